"""A split of a prepared dataset as COCO keypoint ground truth, for `batch.evaluation` (pycocotools).

A dataset that came as COCO keeps its own annotations (`annotations/<split>.json` beside the converted
labels: real segment areas, crowd regions). A YOLO one is read from its label rows by Ultralytics' own
validator rule: area = box area x 0.53, a keypoint counts as labelled when its visibility is > 0 (or, with
2 dims, when it is not at (0, 0) or negative). The category carries the keypoint names, the skeleton and the
dataset's `kpt_oks_sigmas` (pycocotools ignores the extra field; `batch.evaluation.oks_sigmas` reads it).
Every image's `file_name` is its path below the dataset folder; `images` maps it to the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batch.datasets.files import LocalFiles
from batch.datasets.keypoint_set import KeypointDataset
from batch.datasets.yolo_layout import label_path, split_images

AREA_SHARE = 0.53  # Ultralytics' pose validator: the box area's share an instance covers


@dataclass(frozen=True)
class GroundTruth:
    coco: dict[str, Any]
    images: dict[str, Path]  # file_name -> the image file

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.coco))
        return path


def ground_truth(data_yaml: Path, dataset: KeypointDataset, split: str = "val") -> GroundTruth:
    """`data_yaml`: what `batch.datasets.check.prepare` returned (its `path` is the dataset's root)."""
    category = _category(dataset)
    root = Path(yaml.safe_load(data_yaml.read_text())["path"])
    kept = root / "annotations" / f"{split}.json"
    if dataset.layout == "coco" and kept.is_file():
        coco = json.loads(kept.read_text())
        folder = root / "images" / split
        # One category for every class: served results carry no class (class-agnostic AP).
        coco["categories"] = [{"id": 1, "name": "+".join(dataset.class_names), **category}]
        coco["annotations"] = [{**a, "category_id": 1} for a in coco["annotations"]]
        return GroundTruth(coco, {str(i["file_name"]): folder / str(i["file_name"]) for i in coco["images"]})
    images = split_images(LocalFiles(root), dataset.description_file)[split]
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, rel in enumerate(images, start=1):
        width, height = _size(root / rel)
        coco_images.append({"id": image_id, "file_name": rel, "width": width, "height": height})
        label = root / label_path(rel)
        if label.is_file():
            for row in _rows(label):
                annotations.append(_annotation(len(annotations) + 1, image_id, row, width, height, dataset.kpt_shape))
    coco = {
        "info": {"description": f"{split} split of {root.name}, from YOLO labels"},
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "+".join(dataset.class_names), **category}],
    }
    return GroundTruth(coco, {rel: root / rel for rel in images})


def _category(dataset: KeypointDataset) -> dict[str, Any]:
    from batch.inference.keypoints import Declared, keypoint_set

    keypoints = keypoint_set(dataset.num_keypoints, Declared(dataset.keypoint_names, dataset.skeleton), Declared())
    category: dict[str, Any] = {
        "supercategory": "keypoints",
        "keypoints": list(keypoints.names),
        "skeleton": [[a + 1, b + 1] for a, b in keypoints.skeleton],  # COCO's are 1-based
    }
    if dataset.oks_sigmas:
        category["kpt_oks_sigmas"] = list(dataset.oks_sigmas)
    return category


def _size(path: Path) -> tuple[int, int]:
    """Width and height as Ultralytics normalised the labels: EXIF orientation applied."""
    from PIL import Image
    from ultralytics.data.utils import exif_size

    with Image.open(path) as image:
        width, height = exif_size(image)
    return int(width), int(height)


def _rows(label: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in label.read_text().splitlines() if line.strip()]


def _annotation(
    ident: int, image_id: int, row: list[float], width: int, height: int, kpt_shape: tuple[int, int]
) -> dict[str, Any]:
    count, dims = kpt_shape
    cx, cy, w, h = row[1] * width, row[2] * height, row[3] * width, row[4] * height
    points = row[5:]
    keypoints: list[float] = []
    labelled = 0
    for j in range(count):
        x, y = points[j * dims], points[j * dims + 1]
        visible = points[j * dims + 2] > 0 if dims == 3 else (x > 0 or y > 0) and x >= 0 and y >= 0
        labelled += bool(visible)
        keypoints.extend([x * width, y * height, 2 if visible else 0] if visible else [0.0, 0.0, 0])
    return {
        "id": ident,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [cx - w / 2, cy - h / 2, w, h],
        "area": w * h * AREA_SHARE,
        "iscrowd": 0,
        "num_keypoints": labelled,
        "keypoints": keypoints,
    }
