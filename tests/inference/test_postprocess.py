"""The batch post-processing keeps Ultralytics' NMS rule exactly: per image, the same rows as
`ultralytics.utils.nms.non_max_suppression` on the same raw output, whatever the batch mixes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from ultralytics.utils.nms import non_max_suppression

from batch.custom_attributes import InferenceOptions
from batch.inference.engine import PoseEngine, padded_batch_size
from batch.inference.postprocess import detections_batch
from batch.settings import Settings
from tests.conftest import COCO_DIR, MODEL_PATH


@pytest.fixture(scope="module")
def engine() -> PoseEngine:
    return PoseEngine.load(Settings.from_env({"POSE_MODEL": str(MODEL_PATH), "POSE_BACKEND": "torch"}))


@pytest.fixture(scope="module")
def raw(engine: PoseEngine) -> torch.Tensor:
    """The raw head output of eight real COCO photos (people, crowds, none) letterboxed to one shape."""
    paths = sorted((COCO_DIR / "images").glob("*.jpg"))
    canvases = []
    for path in paths:
        prepared = engine.prepare(path.read_bytes(), engine.default_options)
        if tuple(prepared.canvas.shape[:2]) == (480, 640):
            canvases.append(prepared.canvas)
        if len(canvases) == 8:
            break
    return engine.backend.forward(np.stack(canvases))


def reference(raw: torch.Tensor, options: InferenceOptions, nc: int) -> np.ndarray:
    (kept,) = non_max_suppression(raw.unsqueeze(0), options.conf, options.iou, max_det=options.max_det, nc=nc)
    return kept.float().numpy()


@pytest.mark.parametrize(
    "thresholds",
    [
        [(0.25, 0.7, 300)] * 8,  # the defaults
        [(0.001, 0.7, 300)] * 8,  # evaluation's: thousands of candidates
        # one batch, every image its own request options, one with nothing above its threshold
        [
            (0.25, 0.7, 300),
            (0.001, 0.5, 20),
            (0.9, 0.7, 300),
            (0.5, 0.3, 1),
            (0.999, 0.7, 300),
            (0.1, 0.9, 3),
            (0.25, 0.7, 300),
            (0.05, 0.6, 100),
        ],
    ],
    ids=["defaults", "low-conf", "mixed"],
)
def test_the_same_rows_as_ultralytics_per_image(
    raw: torch.Tensor, engine: PoseEngine, thresholds: list[tuple[float, float, int]]
) -> None:
    options = [replace(engine.default_options, conf=c, iou=i, max_det=m) for c, i, m in thresholds]
    ours = detections_batch(raw, options, engine.info)
    assert len(ours) == len(options)
    found = 0
    for index, option in enumerate(options):
        theirs = reference(raw[index], option, engine.info.num_classes)
        assert ours[index].dtype == np.float32
        np.testing.assert_array_equal(ours[index], theirs)
        found += len(theirs)
    assert found > 0  # the photos have people: the comparison is not of empty arrays


def test_padded_batch_sizes() -> None:
    assert [padded_batch_size(n, 32) for n in (1, 2, 3, 5, 8, 9, 17, 31, 32)] == [1, 2, 4, 8, 8, 16, 32, 32, 32]
    assert [padded_batch_size(n, 24) for n in (17, 23, 24)] == [24, 24, 24]  # the largest is always allowed
