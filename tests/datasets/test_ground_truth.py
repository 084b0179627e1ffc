"""A YOLO dataset's validation split as COCO ground truth, scored by `batch.evaluation` with the OKS sigmas of
Ultralytics' validator rule: records that repeat the ground truth score AP 1, records that miss score less."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from batch.datasets.check import prepare
from batch.datasets.ground_truth import AREA_SHARE, ground_truth
from batch.evaluation import evaluate
from batch.output_layout import keypoints_key
from batch.report.sources import LocalSource
from tests.training.datasets import KEYPOINT_NAMES, SKELETON, five_keypoint_dataset


def records_from(truth: dict[str, object], folder: Path, *, shift: float = 0.0) -> Path:
    """One result record per image: the annotated persons themselves (moved by `shift` pixels)."""
    by_image: dict[int, list[dict[str, object]]] = {}
    for annotation in truth["annotations"]:  # type: ignore[attr-defined]
        points = annotation["keypoints"]
        keypoints = [[points[i] + shift, points[i + 1], 0.9] for i in range(0, len(points), 3)]
        by_image.setdefault(annotation["image_id"], []).append(
            {"score": 0.9, "box": [0, 0, 1, 1], "keypoints": keypoints}
        )
    for image in truth["images"]:  # type: ignore[attr-defined]
        target = folder / keypoints_key(image["file_name"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"persons": by_image.get(image["id"], [])}))
    return folder


@pytest.mark.parametrize(("sigmas", "rule"), [(None, "uniform"), ([0.05, 0.08, 0.08, 0.1, 0.1], "dataset")])
def test_yolo_labels_become_ground_truth_scored_by_the_validator_rule(
    tmp_path: Path, sigmas: list[float] | None, rule: str
) -> None:
    root = five_keypoint_dataset(tmp_path / "stars", train=2, val=3, size=96)
    if sigmas:
        content = yaml.safe_load((root / "data.yaml").read_text())
        (root / "data.yaml").write_text(yaml.safe_dump({**content, "kpt_oks_sigmas": sigmas}))
    data_yaml, dataset = prepare(root, tmp_path / "work")
    truth = ground_truth(data_yaml, dataset)
    category = truth.coco["categories"][0]
    assert category["keypoints"] == KEYPOINT_NAMES
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in SKELETON]  # COCO's are 1-based
    assert sorted(truth.images) == [f"images/val/star_{i}.jpg" for i in range(3)]
    first = truth.coco["annotations"][0]
    assert first["num_keypoints"] == 5
    assert first["area"] == pytest.approx(first["bbox"][2] * first["bbox"][3] * AREA_SHARE)
    path = truth.write(tmp_path / "ground_truth.json")

    exact = evaluate(path, LocalSource(records_from(truth.coco, tmp_path / "exact")))
    assert exact.sigmas == rule
    assert exact.stats["AP"] == pytest.approx(1.0)
    off = evaluate(path, LocalSource(records_from(truth.coco, tmp_path / "off", shift=6.0)))
    assert off.stats["AP"] < 0.9
