"""Building the backend that `POSE_BACKEND` / `POSE_DEVICE` ask for, with the fallbacks of `auto`.

`auto` picks the fastest backend that keeps accuracy (measured; see README, Throughput):
- CUDA: torch (FP16 by default).
- CPU with native bf16 (AVX512_BF16, or AMX on AWS's Intel instances): OpenVINO in bf16, about 2x the
  forward of ONNX Runtime f32 with the same COCO AP and parity within reduced precision's tolerance
  (benchmarks/parity.py).
- Any other CPU: ONNX Runtime f32. (Since OpenVINO runs as 1-thread streams, OpenVINO f32 measured faster
  than ONNX Runtime in the whole service on this project's CPU, 1.24x on coco in two runs; `auto` has not
  moved to it because no CPU without native bf16 was at hand to confirm it where it would matter.)
A fallback is logged once, at start-up: OpenVINO unavailable -> ONNX Runtime; the ONNX export itself
failing -> torch. A backend asked for by name never falls back: it works or the server says why.
"""

from __future__ import annotations

import logging

import torch

from batch.errors import ModelLoadError
from batch.inference.backends import Backend, OnnxBackend, TorchBackend, export_onnx
from batch.inference.openvino_backend import Precision, native_bf16
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
    if wanted == "auto" and cpu_has_native_bf16():
        try:
            return openvino_backend(settings, checkpoint, threads, precision="bf16")
        except Exception as exc:
            log.warning("OpenVINO bf16 unavailable (%s); falling back to ONNX Runtime", exc)
    try:
        return OnnxBackend(export_onnx(checkpoint, settings.onnx_cache_dir, settings.imgsz), threads)
    except Exception as exc:
        if wanted == "onnxruntime":
            raise ModelLoadError(f"ONNX Runtime backend unavailable: {exc}") from exc
        log.warning("ONNX export failed (%s); falling back to the torch backend", exc)
        return TorchBackend(yolo, device, half)


def cpu_has_native_bf16() -> bool:
    """False where OpenVINO is not installed (the serving image always has it; a slim install may not)."""
    try:
        return native_bf16()
    except ImportError:
        return False


def openvino_backend(settings: Settings, checkpoint: str, threads: int, precision: Precision | None = None) -> Backend:
    try:
        import openvino  # noqa: F401  (only to say plainly when it is missing)
    except ImportError as exc:
        raise ModelLoadError(f"the openvino package is not installed ({exc})") from exc
    from batch.inference.openvino_backend import OpenVinoBackend

    onnx_path = export_onnx(checkpoint, settings.onnx_cache_dir, settings.imgsz)
    cache_dir = settings.onnx_cache_dir / "openvino"  # the compiled blobs sit beside the export they come from
    return OpenVinoBackend(onnx_path, cache_dir, threads, precision or settings.openvino_precision)
