"""Building the backend that `POSE_BACKEND` / `POSE_DEVICE` ask for, with the fallbacks of `auto`.

`auto` picks the fastest backend that keeps accuracy (measured; see README, Throughput):
- CUDA: torch (FP16 by default).
- CPU: ONNX Runtime; torch when the ONNX export itself fails (logged once, at start-up). OpenVINO only
  when asked for: in f32 its forward matched ONNX Runtime's speed but the whole service ran slower with it
  (its threads compete with the decode pool), and bf16, faster, does not keep per-image parity.
"""

from __future__ import annotations

import logging

import torch

from batch.errors import ModelLoadError
from batch.inference.backends import Backend, OnnxBackend, TorchBackend, export_onnx
from batch.settings import Settings

log = logging.getLogger(__name__)


def make_backend(settings: Settings, yolo: object, checkpoint: str, device: torch.device, threads: int) -> Backend:
    wanted = settings.backend
    half = settings.half if settings.half is not None else device.type == "cuda"
    if wanted == "torch" or (wanted == "auto" and device.type != "cpu"):
        return TorchBackend(yolo, device, half)
    if device.type != "cpu":
        raise ModelLoadError(f"POSE_BACKEND={wanted} runs on the CPU; set POSE_DEVICE=cpu or POSE_BACKEND=torch")
    if wanted == "openvino":  # asked for explicitly: no silent fallback
        try:
            return openvino_backend(settings, checkpoint, threads)
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO backend unavailable: {exc}") from exc
    try:
        return OnnxBackend(export_onnx(checkpoint, settings.onnx_cache_dir, settings.imgsz), threads)
    except Exception as exc:
        if wanted == "onnxruntime":
            raise ModelLoadError(f"ONNX Runtime backend unavailable: {exc}") from exc
        log.warning("ONNX export failed (%s); falling back to the torch backend", exc)
        return TorchBackend(yolo, device, half)


def openvino_backend(settings: Settings, checkpoint: str, threads: int) -> Backend:
    try:
        import openvino  # noqa: F401  (only to say plainly when it is missing)
    except ImportError as exc:
        raise ModelLoadError(f"the openvino package is not installed ({exc})") from exc
    from batch.inference.openvino_backend import OpenVinoBackend

    onnx_path = export_onnx(checkpoint, settings.onnx_cache_dir, settings.imgsz)
    # The compiled blobs sit beside the ONNX export they come from.
    return OpenVinoBackend(onnx_path, settings.onnx_cache_dir / "openvino", threads, settings.openvino_precision)
