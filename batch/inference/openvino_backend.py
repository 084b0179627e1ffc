"""OpenVINO on the CPU: the cached ONNX export, compiled once per machine (OpenVINO's CACHE_DIR keeps the
compiled blob, so later starts skip compilation).

Precision (`POSE_OPENVINO_PRECISION`): `auto` (the default) = bf16 where the CPU has it natively (AVX512_BF16,
or AMX on AWS's Intel instances), f32 otherwise; bf16 is refused where it would be emulated. bf16 runs the
forward at 2x (AVX512_BF16) to 2.5x (AMX) f32 and keeps COCO AP (0.449 against 0.446 on COCO-val-mini); it agrees with
Ultralytics' f32 predict within reduced precision's tolerance (benchmarks/parity.py), not to the float.
`POSE_BACKEND=auto` picks OpenVINO bf16 on such CPUs and f32 on other AVX-512 CPUs (see backend_factory).

The uint8 -> float, NHWC -> NCHW and /255 steps are compiled into the model (OpenVINO's pre-processing),
so they run on OpenVINO's threads instead of numpy on the batcher's thread.
"""

from __future__ import annotations

import logging
import queue
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from batch.errors import ModelLoadError

log = logging.getLogger(__name__)

Precision = Literal["auto", "f32", "bf16"]


def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (it reports BF16 only for AVX512_BF16/AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve_precision(wanted: Precision) -> Literal["f32", "bf16"]:
    """`auto`: bf16 where native, f32 otherwise. bf16 on a CPU without it would be emulated (slow): refused."""
    native = native_bf16()
    if wanted == "auto":
        return "bf16" if native else "f32"
    if wanted == "bf16" and not native:
        raise ModelLoadError("POSE_OPENVINO_PRECISION=bf16 but this CPU has no native bf16 (AVX512_BF16 or AMX)")
    return wanted


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, onnx_path: Path, cache_dir: Path, threads: int, precision: Precision = "auto") -> None:
        import openvino as ov
        from openvino.preprocess import PrePostProcessor

        wanted = resolve_precision(precision)
        core = ov.Core()
        cache_dir.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})
        model = core.read_model(str(onnx_path))
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
        config = {
            "INFERENCE_PRECISION_HINT": wanted,
            "INFERENCE_NUM_THREADS": threads,
            # Streams of few threads each, one batch per stream, run side by side (the batcher's lanes):
            # measured on two cores, two 1-thread streams give 52-53 img/s where one 2-thread stream gives
            # 48-49, and no thread spins waiting for its partner while the decode pool wants the core.
            "PERFORMANCE_HINT": "THROUGHPUT",
            # Pinned inference threads fight the decode pool for the same cores: let the OS place them.
            "ENABLE_CPU_PINNING": False,
        }
        self._compiled = core.compile_model(ppp.build(), "CPU", config)
        # What OpenVINO actually runs, not what was asked: this is what /metrics and the logs report.
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "f32", "bf16"
        if self.precision != wanted:
            raise ModelLoadError(f"OpenVINO compiled in {self.precision}, not the {wanted} asked for")
        self.lanes = int(self._compiled.get_property("NUM_STREAMS"))
        # One request per stream: a forward takes a free one (the batcher runs at most `lanes` at once).
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.lanes):
            self._requests.put(self._compiled.create_infer_request())
        self.device = torch.device("cpu")
        self.half = False
        self.path = onnx_path

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        """`batch`: (B, H, W, 3) uint8 RGB, as the letterbox makes it."""
        request = self._requests.get()
        try:
            request.infer({0: np.ascontiguousarray(batch)})
            # The request reuses its output buffer on the next call: copy out.
            return torch.from_numpy(request.get_output_tensor(0).data.copy())
        finally:
            self._requests.put(request)

    def forward_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        return self.forward(batch.cpu().numpy())
