"""Building the backend that `POSE_BACKEND` / `POSE_DEVICE` ask for, with the fallbacks of `auto`.

`auto` picks the fastest backend that keeps accuracy (measured; see README, Throughput):
- CUDA: torch (FP16 by default).
- CPU with native bf16 (AVX512_BF16, or AMX on AWS's Intel instances such as c7i): OpenVINO in bf16,
  2-3x the forward of ONNX Runtime f32 with the same COCO AP and parity within reduced precision's
  tolerance (benchmarks/parity.py).
- CPU with AVX-512 but no bf16 (AWS's c5 and c6i): OpenVINO f32. With bf16 turned off it ran the forward
  1.2-1.5x and the whole service 1.1-1.3x as fast as ONNX Runtime f32 on both CPUs measured (an AMD EPYC
  and a Xeon with AMX; phone photos, bound by JPEG decoding, gain the least), with exact parity.
- Any other CPU (AVX2 only, such as c6a): ONNX Runtime f32. OpenVINO limited to AVX2 here
  (ONEDNN_MAX_CPU_ISA=AVX2) ran at 28-30 img/s against ONNX Runtime's 33-38 with AVX-512; ONNX Runtime
  cannot be limited the same way, so which is faster on such a CPU is unmeasured, and the default stays.
A fallback is logged once, at start-up: OpenVINO unavailable -> ONNX Runtime; the ONNX export itself
failing -> torch. A backend asked for by name never falls back: it works or the server says why.
"""

from __future__ import annotations

import logging
from typing import Literal

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
    precision = auto_openvino_precision() if wanted == "auto" else None
    if precision is not None:
        try:
            return openvino_backend(settings, checkpoint, threads, precision=precision)
        except Exception as exc:
            log.warning("OpenVINO %s unavailable (%s); falling back to ONNX Runtime", precision, exc)
    try:
        return OnnxBackend(export_onnx(checkpoint, settings.onnx_cache_dir, settings.imgsz), threads)
    except Exception as exc:
        if wanted == "onnxruntime":
            raise ModelLoadError(f"ONNX Runtime backend unavailable: {exc}") from exc
        log.warning("ONNX export failed (%s); falling back to the torch backend", exc)
        return TorchBackend(yolo, device, half)


def auto_openvino_precision() -> Literal["bf16", "f32"] | None:
    """What `auto` runs OpenVINO in on this CPU; None: ONNX Runtime is the pick here."""
    if cpu_has_native_bf16():
        return "bf16"
    if cpu_has_avx512():
        return "f32"
    return None


def cpu_has_avx512() -> bool:
    """AVX-512 as PyTorch's kernel dispatch sees it (the same instruction set OpenVINO's kernels use)."""
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


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
