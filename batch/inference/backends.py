"""Model forward passes. A backend takes a uint8 batch (B, H, W, 3) RGB and returns the raw head
output (B, 4 + classes + keypoints*dims, anchors) as a torch tensor on the backend's device.

- `TorchBackend`: the Ultralytics module, fused; FP16 on CUDA. Normalisation runs on the device.
- `OnnxBackend`: the same model exported once to ONNX (dynamic batch and shape) and cached; ONNX
  Runtime on all CPU cores runs it ~2x faster than torch on small CPUs.
- `OpenVinoBackend` (openvino_backend.py) compiles that same export; `backend_factory` picks one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from batch.errors import ModelLoadError

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str
    device: torch.device
    half: bool
    precision: str  # what the forward computes in (f32, f16, bf16): /metrics and the start-up log say it
    lanes: int  # forwards that may run at once (the batcher runs that many batches side by side)

    def forward(self, batch: np.ndarray) -> torch.Tensor: ...

    def forward_tensor(self, batch: torch.Tensor) -> torch.Tensor: ...


class TorchBackend:
    name = "torch"
    lanes = 1

    def __init__(self, yolo: Any, device: torch.device, half: bool) -> None:
        self.device = device
        self.half = half and device.type == "cuda"
        self.precision = "f16" if self.half else "f32"
        module = yolo.model.fuse(verbose=False) if hasattr(yolo.model, "fuse") else yolo.model
        module = module.to(device).eval()
        self._module = module.half() if self.half else module.float()
        self._pin = device.type == "cuda"

    @torch.inference_mode()
    def forward(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(batch)
        if self._pin:
            tensor = tensor.pin_memory()
        return self.forward_tensor(tensor.to(self.device, non_blocking=True))

    @torch.inference_mode()
    def forward_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """`batch`: (B, H, W, 3) uint8 already on the device (GPU-decoded images come this way)."""
        images = batch.permute(0, 3, 1, 2)
        images = (images.half() if self.half else images.float()).div_(255.0)
        output = self._module(images)
        return output[0] if isinstance(output, list | tuple) else output


class OnnxBackend:
    name = "onnxruntime"
    lanes = 1

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads steal the cores that decode the next batch; sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.device = torch.device("cpu")
        self.half = False
        self.precision = "f32"
        self.path = onnx_path

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        images = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        images *= 1.0 / 255.0
        (output,) = self._session.run(None, {self._input: images})[:1]
        return torch.from_numpy(output)

    def forward_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        return self.forward(batch.cpu().numpy())


def export_onnx(checkpoint: str, cache_dir: Path, imgsz: int) -> Path:
    """Export once per checkpoint content and Ultralytics version; later starts reuse the file."""
    import ultralytics
    from ultralytics import YOLO

    source = Path(checkpoint)
    if not source.is_file():
        raise ModelLoadError(f"ONNX export needs a checkpoint file; {checkpoint!r} is not one")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir / f"{source.stem}-{digest}-ul{ultralytics.__version__}.onnx"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX (once; cached at %s)", source.name, target)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        # Export next to a private copy: the checkpoint's own folder may be read-only (/opt/ml/model).
        copy = Path(scratch) / source.name
        shutil.copyfile(source, copy)
        with warnings.catch_warnings():
            # Ultralytics calls torch's TorchScript-based exporter, which torch announces as legacy; the
            # export works, and the notice is not ours to act on (an error where warnings are errors).
            warnings.simplefilter("ignore", DeprecationWarning)
            exported = YOLO(str(copy), task="pose").export(
                format="onnx", dynamic=True, simplify=True, imgsz=imgsz, device="cpu", verbose=False
            )
        os.replace(exported, target)  # atomic: a concurrent reader never sees half a file
    return target
