"""Accuracy and parity on real COCO val2017 images (../shared/data/coco-val-mini), through the real
server, for every CPU backend: the optimised pipeline must lose nothing against Ultralytics' own predict."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import COCO_DIR, MODEL_PATH, ServerFactory

pytestmark = pytest.mark.slow

REFERENCE_AP = 0.446  # ../shared/README.md: ultralytics 8.4, one image at a time, conf=0.001
MIN_AP = 0.441
# The CPU backends, and the CUDA path's pre-processing (batched JPEG decode + tensor letterbox) run on the CPU.
BACKENDS = {
    "onnxruntime": {"POSE_BACKEND": "onnxruntime"},
    "torch": {"POSE_BACKEND": "torch"},
    "torch-device-decode": {"POSE_BACKEND": "torch", "POSE_DEVICE_DECODE": "on"},
}


def coco_images() -> list[Path]:
    return sorted((COCO_DIR / "images").glob("*.jpg"))


def pose_all(url: str, images: list[Path], attributes: str) -> dict[str, dict[str, Any]]:
    """Concurrent requests, like Batch Transform with MaxConcurrentTransforms=8."""

    def one(path: Path) -> dict[str, Any]:
        response = httpx.post(
            f"{url}/invocations",
            content=path.read_bytes(),
            headers={"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": attributes},
            timeout=120,
        )
        response.raise_for_status()
        return dict(response.json())

    with ThreadPoolExecutor(8) as pool:
        return dict(zip((p.name for p in images), pool.map(one, images), strict=True))


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend_url(request: pytest.FixtureRequest, server_factory: ServerFactory) -> str:
    return server_factory(**BACKENDS[request.param])


@pytest.fixture(scope="module")
def ultralytics_reference() -> dict[str, Any]:
    """Ultralytics' own predict, one image path at a time, default thresholds (conf 0.25, iou 0.7)."""
    from ultralytics import YOLO

    model = YOLO(str(MODEL_PATH))
    return {p.name: model.predict(str(p), conf=0.25, iou=0.7, max_det=300, verbose=False)[0] for p in coco_images()}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9))


def test_parity_with_ultralytics_predict(backend_url: str, ultralytics_reference: dict[str, Any]) -> None:
    ours = pose_all(backend_url, coco_images(), "conf=0.25;iou=0.7;max_det=300")
    distances: list[float] = []
    for name, reference in ultralytics_reference.items():
        persons = ours[name]["persons"]
        assert len(persons) == len(reference.boxes), f"{name}: {len(persons)} persons vs {len(reference.boxes)}"
        if not persons:
            continue
        ref_boxes = reference.boxes.xyxy.numpy()
        ref_kpts = reference.keypoints.data.numpy()
        our_boxes = np.array([p["box"] for p in persons])
        our_kpts = np.array([p["keypoints"] for p in persons])
        match = box_iou(our_boxes, ref_boxes).argmax(axis=1)  # each of ours to its reference person
        assert len(set(match.tolist())) == len(persons), f"{name}: persons do not pair up one to one"
        distances.extend(np.linalg.norm(our_kpts[:, :, :2] - ref_kpts[match, :, :2], axis=2).ravel().tolist())
    assert distances, "no persons at all: the comparison would be empty"
    assert float(np.mean(distances)) < 1.0, f"mean keypoint distance {np.mean(distances):.3f} px"


def test_coco_keypoint_ap(backend_url: str, tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(COCO_DIR / "person_keypoints.json"))
    ids = {Path(info["file_name"]).name: image_id for image_id, info in gt.imgs.items()}
    results = pose_all(backend_url, coco_images(), "conf=0.001;iou=0.7;max_det=300")
    detections = [
        {
            "image_id": ids[name],
            "category_id": 1,
            "keypoints": [v for x, y, c in person["keypoints"] for v in (x, y, c)],
            "score": person["score"],
        }
        for name, result in results.items()
        for person in result["persons"]
    ]
    (tmp_path / "dets.json").write_text(json.dumps(detections))
    evaluator = COCOeval(gt, gt.loadRes(str(tmp_path / "dets.json")), "keypoints")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    ap = float(evaluator.stats[0])
    print(f"COCO-val-mini keypoint AP = {ap:.3f} (reference {REFERENCE_AP})")
    assert ap >= MIN_AP
