"""The engine in-process: one batch mixing device-decoded JPEGs, CPU-decoded formats and a broken file."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from batch.errors import InvalidImage
from batch.inference.engine import PoseEngine, Prediction
from batch.settings import Settings
from tests.builders import encode
from tests.conftest import MODEL_PATH


@pytest.fixture(scope="module")
def engines() -> dict[str, PoseEngine]:
    base = {"POSE_MODEL": str(MODEL_PATH), "POSE_BACKEND": "torch", "POSE_MAX_BATCH_WAIT_MS": "50"}
    return {mode: PoseEngine.load(Settings.from_env({**base, "POSE_DEVICE_DECODE": mode})) for mode in ("off", "on")}


def run_all(engine: PoseEngine, bodies: list[bytes], annotate: bool = False) -> list[Prediction | BaseException]:
    async def main() -> list[Prediction | BaseException]:
        predictions = (engine.predict(b, annotate=annotate) for b in bodies)
        return list(await asyncio.gather(*predictions, return_exceptions=True))

    return asyncio.run(main())


def test_mixed_batch_on_the_device_path(engines: dict[str, PoseEngine], sample_images: dict[str, bytes]) -> None:
    import io

    from PIL import Image

    bus = sample_images["bus.jpg"]
    bus_png = encode(Image.open(io.BytesIO(bus)), "PNG")
    truncated = bus[: len(bus) // 3]  # header intact, data cut: passes the header check, fails decoding
    cpu = run_all(engines["off"], [bus])
    device = run_all(engines["on"], [bus, truncated, bus_png], annotate=True)
    assert isinstance(device[1], InvalidImage)
    reference = cpu[0]
    assert isinstance(reference, Prediction)
    for outcome in (device[0], device[2]):
        assert isinstance(outcome, Prediction)
        assert len(outcome.result.persons) == len(reference.result.persons)
        ours = np.array([p.keypoints for p in outcome.result.persons])[..., :2]
        theirs = np.array([p.keypoints for p in reference.result.persons])[..., :2]
        assert np.abs(ours - theirs).mean() < 1.0
    for outcome in (device[0], device[2]):
        assert isinstance(outcome, Prediction) and outcome.annotated is not None
        assert Image.open(io.BytesIO(outcome.annotated)).size == (750, 1000)  # shrunk to the 1000 px cap


def cpu_settings(**environment: str) -> Settings:
    return Settings.from_env({"POSE_MODEL": str(MODEL_PATH), "POSE_DEVICE": "cpu", **environment})


def test_openvino_f32_computes_what_onnxruntime_computes() -> None:
    """Same export, same uint8 batch: OpenVINO's compiled pre-processing (u8 NHWC -> f32 NCHW / 255)
    and forward give ONNX Runtime's raw head output."""
    import torch

    from batch.inference.backends import OnnxBackend, export_onnx
    from batch.inference.openvino_backend import OpenVinoBackend

    settings = cpu_settings()
    onnx_path = export_onnx(str(MODEL_PATH), settings.onnx_cache_dir, settings.imgsz)
    batch = np.random.default_rng(0).integers(0, 256, (2, 480, 640, 3), dtype=np.uint8)
    reference = OnnxBackend(onnx_path, 2).forward(batch)
    ours = OpenVinoBackend(onnx_path, settings.onnx_cache_dir / "openvino", 2, "f32").forward(batch)
    assert ours.shape == reference.shape and ours.dtype == torch.float32
    assert float((ours - reference).abs().max()) < 0.05  # pixels at 640 scale; measured 0.004


def test_openvino_asked_for_but_missing_is_a_clear_start_up_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import torch

    from batch.errors import ModelLoadError
    from batch.inference.backend_factory import make_backend

    # As if the openvino package were not installed (None in sys.modules makes its import fail).
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.delitem(sys.modules, "batch.inference.openvino_backend", raising=False)
    cpu = torch.device("cpu")
    with pytest.raises(ModelLoadError, match="openvino package is not installed"):
        make_backend(cpu_settings(POSE_BACKEND="openvino"), None, str(MODEL_PATH), cpu, 2)
    # auto does not need it on the CPU.
    assert make_backend(cpu_settings(POSE_BACKEND="auto"), None, str(MODEL_PATH), cpu, 2).name == "onnxruntime"


def test_auto_on_this_cpu_runs_what_its_instruction_set_calls_for() -> None:
    import torch

    from batch.inference.backend_factory import auto_openvino_precision, make_backend

    backend = make_backend(cpu_settings(POSE_BACKEND="auto"), None, str(MODEL_PATH), torch.device("cpu"), 2)
    precision = auto_openvino_precision()
    assert (backend.name, backend.precision) == (("openvino", precision) if precision else ("onnxruntime", "f32"))


@pytest.mark.parametrize(
    ("bf16", "avx512", "expected"),
    [
        (True, True, ("openvino", "bf16")),  # AVX512_BF16 or AMX (c7i)
        (False, True, ("openvino", "f32")),  # AVX-512 without bf16 (c5, c6i)
        (False, False, ("onnxruntime", "f32")),  # AVX2 only (c6a)
    ],
)
def test_auto_on_the_cpu_by_instruction_set(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, avx512: bool, expected: tuple[str, str]
) -> None:
    """The CPU's capabilities are the only thing stood in for: the backends are built for real (bf16 only
    where this CPU runs it, as OpenVINO refuses emulated bf16)."""
    import torch

    from batch.inference import backend_factory

    if bf16 and not backend_factory.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16")
    monkeypatch.setattr(backend_factory, "cpu_has_native_bf16", lambda: bf16)
    monkeypatch.setattr(backend_factory, "cpu_has_avx512", lambda: avx512)
    settings = cpu_settings(POSE_BACKEND="auto")
    backend = backend_factory.make_backend(settings, None, str(MODEL_PATH), torch.device("cpu"), 2)
    assert (backend.name, backend.precision) == expected


def test_auto_falls_back_to_onnxruntime_when_openvino_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    from batch.inference import backend_factory

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("compilation failed")

    monkeypatch.setattr(backend_factory, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(backend_factory, "openvino_backend", broken)
    settings = cpu_settings(POSE_BACKEND="auto")
    backend = backend_factory.make_backend(settings, None, str(MODEL_PATH), torch.device("cpu"), 2)
    assert backend.name == "onnxruntime"
    assert "OpenVINO bf16 unavailable (compilation failed)" in caplog.text
