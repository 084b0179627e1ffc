"""Accuracy and parity on real COCO val2017 images (../shared/data/coco-val-mini), through the real
server, for every CPU backend and precision: the optimised pipeline must lose nothing against Ultralytics'
own predict."""

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
# The CPU backends and precisions, and the CUDA path's pre-processing (batched JPEG decode + tensor
# letterbox) run on the CPU. Each entry: the server's environment, then the (backend, precision) it must run.
BACKENDS: dict[str, tuple[dict[str, str], tuple[str, str]]] = {
    "auto": ({"POSE_BACKEND": "auto"}, ("onnxruntime", "f32")),  # what a CPU server runs by default
    "openvino": ({"POSE_BACKEND": "openvino"}, ("openvino", "f32")),
    "openvino-bf16": ({"POSE_BACKEND": "openvino", "POSE_OPENVINO_PRECISION": "bf16"}, ("openvino", "bf16")),
    "torch": ({"POSE_BACKEND": "torch"}, ("torch", "f32")),
    "torch-device-decode": ({"POSE_BACKEND": "torch", "POSE_DEVICE_DECODE": "on"}, ("torch", "f32")),
}
# bf16 keeps AP but not per-image parity (one borderline person at conf 0.25, keypoints ~1.4 px apart):
# it is opt-in and `auto` never picks it. Strict: should it ever reach parity, this marker must go.
NO_PARITY = {"openvino-bf16"}


def native_bf16() -> bool:
    from batch.inference.openvino_backend import native_bf16 as native

    return native()


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
def backend(request: pytest.FixtureRequest, server_factory: ServerFactory) -> tuple[str, str]:
    """(name, url) of a server running that backend."""
    environment, expected = BACKENDS[request.param]
    if environment.get("POSE_OPENVINO_PRECISION") == "bf16" and not native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512_BF16 or AMX)")
    url = server_factory(**environment)
    # The server runs what was asked (no silent fallback), at the precision asked for.
    metrics = httpx.get(f"{url}/metrics", timeout=30).json()
    assert (metrics["backend"], metrics["precision"]) == expected
    return request.param, url


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


def test_parity_with_ultralytics_predict(
    backend: tuple[str, str], ultralytics_reference: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    backend_name, url = backend
    if backend_name in NO_PARITY:
        request.applymarker(pytest.mark.xfail(reason="bf16: AP holds, per-image parity does not", strict=True))
    ours = pose_all(url, coco_images(), "conf=0.25;iou=0.7;max_det=300")
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


def reference_keypoint_ap(results: dict[str, dict[str, Any]], tmp_path: Path) -> float:
    """pycocotools' keypoint AP of server results (file name -> PoseResult JSON) against COCO-val-mini,
    computed here independently of the product's `pose-batch eval` (whose test compares against it)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(COCO_DIR / "person_keypoints.json"))
    ids = {Path(info["file_name"]).name: image_id for image_id, info in gt.imgs.items()}
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
    return float(evaluator.stats[0])


def test_coco_keypoint_ap(backend: tuple[str, str], tmp_path: Path) -> None:
    results = pose_all(backend[1], coco_images(), "conf=0.001;iou=0.7;max_det=300")
    ap = reference_keypoint_ap(results, tmp_path)
    print(f"{backend[0]}: COCO-val-mini keypoint AP = {ap:.4f} (reference {REFERENCE_AP})")
    assert ap >= MIN_AP
