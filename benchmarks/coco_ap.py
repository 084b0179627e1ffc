"""COCO keypoint AP of a running server on a COCO folder (images/ + person_keypoints.json), the way
tests/inference/test_coco_accuracy.py measures it: every image over HTTP, conf 0.001, pycocotools."""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.modes import Client

ATTRIBUTES = "conf=0.001;iou=0.7;max_det=300"


def keypoint_ap(url: str, coco_dir: Path) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(coco_dir / "person_keypoints.json"))
    ids = {Path(info["file_name"]).name: image_id for image_id, info in gt.imgs.items()}
    client = Client(url)

    def one(path: Path) -> list[dict[str, Any]]:
        status, data, _ = client.post(path.read_bytes(), "image/jpeg", ATTRIBUTES)
        if status != 200:
            raise RuntimeError(f"{path.name}: HTTP {status}: {data[:200]!r}")
        return [
            {
                "image_id": ids[path.name],
                "category_id": 1,
                "keypoints": [v for x, y, c in person["keypoints"] for v in (x, y, c)],
                "score": person["score"],
            }
            for person in json.loads(data)["persons"]
        ]

    paths = sorted(p for p in (coco_dir / "images").glob("*.jpg") if p.name in ids)
    with client, ThreadPoolExecutor(8) as pool:  # the client's connections close with it
        detections = [d for found in pool.map(one, paths) for d in found]
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "detections.json"
        results.write_text(json.dumps(detections))
        evaluator = COCOeval(gt, gt.loadRes(str(results)), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])
