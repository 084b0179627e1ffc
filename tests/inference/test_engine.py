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
        assert Image.open(io.BytesIO(outcome.annotated)).size == (810, 1080)  # under the 1920 px cap: as is
