"""Accuracy and parity on real COCO val2017 images (../shared/data/coco-val-mini), through the real
server, for every CPU backend and precision: the optimised pipeline must lose nothing against Ultralytics'
own predict."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import parity
from tests.conftest import COCO_DIR, MODEL_PATH, ServerFactory

pytestmark = pytest.mark.slow

REFERENCE_AP = 0.446  # ../shared/README.md: ultralytics 8.4, one image at a time, conf=0.001
MIN_AP = 0.441


def native_bf16() -> bool:
    from batch.inference.openvino_backend import native_bf16 as native

    return native()


# The CPU backends and precisions, and the CUDA path's pre-processing (batched JPEG decode + tensor
# letterbox) run on the CPU. Each entry: the server's environment, then the (backend, precision) it must run.
# (`auto` picks one of these: OpenVINO bf16 where the CPU has native bf16, else ONNX Runtime; test_engine.py.)
BACKENDS: dict[str, tuple[dict[str, str], tuple[str, str]]] = {
    "onnxruntime": ({"POSE_BACKEND": "onnxruntime"}, ("onnxruntime", "f32")),
    "openvino": ({"POSE_BACKEND": "openvino", "POSE_OPENVINO_PRECISION": "f32"}, ("openvino", "f32")),
    "openvino-bf16": ({"POSE_BACKEND": "openvino", "POSE_OPENVINO_PRECISION": "bf16"}, ("openvino", "bf16")),
    "torch": ({"POSE_BACKEND": "torch"}, ("torch", "f32")),
    "torch-device-decode": ({"POSE_BACKEND": "torch", "POSE_DEVICE_DECODE": "on"}, ("torch", "f32")),
}
CONF, IOU = 0.25, 0.7  # Ultralytics' default thresholds, at which parity is checked


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
def ultralytics_predict() -> Callable[[float, float], dict[str, parity.Persons]]:
    """Ultralytics' own predict, one image path at a time, at given (conf, iou), memoised."""
    from ultralytics import YOLO

    model = YOLO(str(MODEL_PATH))

    @functools.cache
    def at(conf: float, iou: float) -> dict[str, parity.Persons]:
        return parity.ultralytics_persons(model, coco_images(), conf, iou)

    return at


def test_parity_with_ultralytics_predict(
    backend: tuple[str, str], ultralytics_predict: Callable[[float, float], dict[str, parity.Persons]]
) -> None:
    """f32: persons one to one and keypoints < 1 px apart on average. bf16: every person seen on one side
    has its partner on the other with thresholds relaxed by the tolerance, and visible keypoints < 1 px
    apart on average (benchmarks/parity.py says why)."""
    _, url = backend
    precision = httpx.get(f"{url}/metrics", timeout=30).json()["precision"]
    tolerance = parity.tolerance_for(precision)

    @functools.cache  # f32's relaxed thresholds are its own: asked once
    def ours(conf: float, iou: float) -> dict[str, parity.Persons]:
        return parity.server_persons(url, coco_images(), conf, iou)

    relaxed = tolerance.relaxed(CONF, IOU)
    report = parity.compare(
        parity.Side(ours(CONF, IOU), ours(*relaxed)),
        parity.Side(ultralytics_predict(CONF, IOU), ultralytics_predict(*relaxed)),
        tolerance,
    )
    print(f"{backend[0]} ({precision}): {report.summary()}")
    assert report.passed, report.problems()


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
