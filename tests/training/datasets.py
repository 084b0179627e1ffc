"""Plain builders of training datasets, made at run time (nothing committed): a synthetic 5-keypoint set
with names and a skeleton, and COCO keypoints folders cut from ../shared/data/coco-val-mini."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw

KEYPOINT_NAMES = ["hub", "left_arm", "right_arm", "left_leg", "right_leg"]
SKELETON = [[0, 1], [0, 2], [0, 3], [0, 4]]
FLIP_IDX = [0, 2, 1, 4, 3]


def five_keypoint_dataset(root: Path, *, train: int = 8, val: int = 4, size: int = 96, seed: int = 0) -> Path:
    """A YOLO pose folder of coloured stars (a hub and four arms), one or two per image; returns `root`."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = Image.new("RGB", (size, size), (rng.randint(90, 160),) * 3)
            draw = ImageDraw.Draw(image)
            rows = [_star(draw, rng, size) for _ in range(rng.randint(1, 2))]
            image.save(root / "images" / split / f"star_{index}.jpg", quality=90)
            (root / "labels" / split / f"star_{index}.txt").write_text("\n".join(rows) + "\n")
    write_yaml(
        root,
        {
            "train": "images/train",
            "val": "images/val",
            "kpt_shape": [5, 3],
            "flip_idx": FLIP_IDX,
            "names": {0: "star"},
            "kpt_names": {0: KEYPOINT_NAMES},
            "skeleton": SKELETON,
        },
    )
    return root


def _star(draw: ImageDraw.ImageDraw, rng: random.Random, size: int) -> str:
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size
    reach = rng.uniform(0.12, 0.25) * size
    points = [
        (cx, cy),
        (cx - reach, cy - reach),
        (cx + reach, cy - reach),
        (cx - reach, cy + reach),
        (cx + reach, cy + reach),
    ]
    colour = (rng.randint(0, 80), rng.randint(150, 255), rng.randint(0, 80))
    for x, y in points[1:]:
        draw.line([points[0], (x, y)], fill=colour, width=3)
    draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=(220, 40, 40))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs) - 4, max(xs) + 4, min(ys) - 4, max(ys) + 4
    box = [(x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size]
    values = [0, *box, *[v for x, y in points for v in (x / size, y / size, 2)]]
    return " ".join(f"{v:.6g}" for v in values)


def write_yaml(root: Path, content: dict[str, Any]) -> Path:
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def coco_folder(root: Path, coco_dir: Path, *, train: int, val: int | None = None) -> Path:
    """A COCO keypoints folder with person_keypoints_train.json / _val.json over images of `coco_dir`
    (chosen by a hash of the file name, so the same split every run); images are linked, not copied."""
    truth = json.loads((coco_dir / "person_keypoints.json").read_text())
    images = sorted(truth["images"], key=lambda i: zlib.crc32(i["file_name"].encode()))
    parts = {"train": images[:train], "val": images[train : None if val is None else train + val]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, part in parts.items():
        ids = {i["id"] for i in part}
        subset = {**truth, "images": part, "annotations": [a for a in truth["annotations"] if a["image_id"] in ids]}
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(subset))
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for image in part:
            (folder / image["file_name"]).symlink_to(coco_dir / "images" / image["file_name"])
    return root
