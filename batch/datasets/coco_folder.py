"""A COCO keypoints folder: images plus COCO keypoints JSON, checked before any job starts and converted
where the training runs with Ultralytics' own converter (`ultralytics.data.converter.convert_coco`).

    person_keypoints.json          (or annotations/*.json; several files: a name with "train" or "val" says
    images/...                      the split, e.g. person_keypoints_train2017.json)

Images are found under `images/<split>/`, `images/`, `<split>/` or the folder itself, by `file_name`. One JSON
alone is split deterministically: a fifth of its images (at least one), chosen by a hash of the file name,
form the validation split, so the same folder always splits the same way, in the check, the training job and
the evaluation step. Every category must share one keypoint list; its names and skeleton become the model's.
"""

from __future__ import annotations

import json
import posixpath
import zlib
from pathlib import Path
from typing import Any

import yaml

from batch.datasets.files import DatasetFiles, LocalFiles
from batch.datasets.keypoint_set import KeypointDataset, SplitSummary
from batch.datasets.problems import DatasetError, Problem

VAL_SHARE = 0.2
SPLITS = ("train", "val")
# A keypoint annotated this far outside its image is a mistake, not rounding.
TOLERANCE_PX = 1.0


def find_json(names: list[str]) -> list[str]:
    """The annotation files: *.json at the root or under annotations/."""
    return [n for n in names if n.lower().endswith(".json") and posixpath.dirname(n) in ("", "annotations")]


def json_splits(json_files: list[str]) -> dict[str, str] | None:
    """{split: json file} when the names say the splits; None for one JSON to be split by hash."""
    if len(json_files) == 1:
        return None
    named: dict[str, str] = {}
    for name in json_files:
        stem = posixpath.basename(name).lower()
        for split in SPLITS:
            if split in stem:
                named.setdefault(split, name)
    return named


def split_by_hash(images: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A fifth of the images (at least one), by crc32 of the file name, for validation; the rest train."""
    ordered = sorted(images, key=lambda image: (zlib.crc32(str(image.get("file_name")).encode()), image.get("id")))
    count = max(1, round(len(ordered) * VAL_SHARE)) if len(ordered) > 1 else 0
    return {"train": ordered[count:], "val": ordered[:count]}


def load_splits(files: DatasetFiles, json_files: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """{split: (json file, COCO dict restricted to that split)}; DatasetError naming what cannot be read."""
    named = json_splits(json_files)
    if named is not None and set(named) != set(SPLITS):
        raise DatasetError(
            files.location,
            [
                Problem(
                    ", ".join(json_files),
                    None,
                    "several COCO JSON files: name one with 'train' and one with 'val' (e.g. "
                    "person_keypoints_train.json, person_keypoints_val.json), or keep only one (split automatically)",
                )
            ],
        )
    if named is None:
        (only,) = json_files
        coco = _read_json(files, only)
        return {
            split: (only, _subset(coco, part)) for split, part in split_by_hash(list(coco.get("images") or [])).items()
        }
    return {split: (name, _read_json(files, name)) for split, name in named.items()}


def _read_json(files: DatasetFiles, name: str) -> dict[str, Any]:
    try:
        content = json.loads(files.read_bytes(name))
    except json.JSONDecodeError as exc:
        raise DatasetError(files.location, [Problem(name, exc.lineno, f"is not valid JSON: {exc.msg}")]) from None
    except UnicodeDecodeError:
        raise DatasetError(files.location, [Problem(name, None, "is not UTF-8 JSON")]) from None
    if not isinstance(content, dict) or not all(isinstance(content.get(k), list) for k in ("images", "categories")):
        raise DatasetError(
            files.location, [Problem(name, 1, "is not COCO JSON: needs `images`, `annotations` and `categories` lists")]
        )
    return content


def _subset(coco: dict[str, Any], images: list[dict[str, Any]]) -> dict[str, Any]:
    ids = {image.get("id") for image in images}
    return {
        **coco,
        "images": images,
        "annotations": [a for a in coco.get("annotations") or [] if a.get("image_id") in ids],
    }


def check(files: DatasetFiles, json_files: list[str]) -> KeypointDataset:
    splits = load_splits(files, json_files)
    names = set(files.names())
    problems: list[Problem] = []
    keypoint_names, skeleton, class_names = _categories(splits, problems)
    if problems or keypoint_names is None:
        raise DatasetError(files.location, problems)
    count = len(keypoint_names)
    summaries = {}
    for split, (json_file, coco) in splits.items():
        images = coco["images"]
        if not images:
            problems.append(Problem(json_file, None, f"the {split} split holds no images: an empty split"))
        base = image_base(split, [str(i.get("file_name")) for i in images], names)
        by_id = {image.get("id"): image for image in images}
        missing = [i for i in images if posixpath.join(base, str(i.get("file_name"))) not in names]
        for image in missing[:5]:
            problems.append(Problem(json_file, None, f"image {image.get('file_name')!r} is not in the folder"))
        if len(missing) > 5:
            problems.append(Problem(json_file, None, f"... {len(missing) - 5} more images are not in the folder"))
        instances = 0
        labelled: set[Any] = set()
        for annotation in coco.get("annotations") or []:
            if annotation.get("iscrowd"):
                continue
            found = _annotation_problem(annotation, by_id.get(annotation.get("image_id")), count)
            if found:
                problems.append(Problem(json_file, None, found))
            elif any((annotation.get("keypoints") or [])[2::3]):
                instances += 1
                labelled.add(annotation.get("image_id"))
        if images and not instances:
            problems.append(Problem(json_file, None, f"the {split} split has no annotation with labelled keypoints"))
        summaries[split] = SplitSummary(images=len(images), labelled_images=len(labelled), instances=instances)
    if problems:
        raise DatasetError(files.location, problems)
    return KeypointDataset(
        layout="coco",
        description_file=", ".join(sorted({name for name, _ in splits.values()})),
        kpt_shape=(count, 3),
        class_names=class_names,
        keypoint_names=keypoint_names,
        skeleton=skeleton,
        flip_idx=flip_order(keypoint_names),
        splits=summaries,
    )


def _categories(
    splits: dict[str, tuple[str, dict[str, Any]]], problems: list[Problem]
) -> tuple[tuple[str, ...] | None, tuple[tuple[int, int], ...] | None, tuple[str, ...]]:
    keypoint_names: tuple[str, ...] | None = None
    skeleton: tuple[tuple[int, int], ...] | None = None
    class_names: list[str] = []
    for json_file, coco in splits.values():
        for category in coco["categories"]:
            names = category.get("keypoints")
            if not isinstance(names, list) or not names:
                problems.append(
                    Problem(json_file, None, f"category {category.get('name')!r} has no `keypoints` list of names")
                )
                continue
            if keypoint_names is not None and tuple(names) != keypoint_names:
                problems.append(
                    Problem(json_file, None, f"category {category.get('name')!r} lists other keypoints than the first")
                )
                continue
            keypoint_names = tuple(str(n) for n in names)
            skeleton = skeleton or _skeleton(category, len(names), json_file, problems)
            if str(category.get("name")) not in class_names:
                class_names.append(str(category.get("name")))
    return keypoint_names, skeleton, tuple(class_names)


def _skeleton(
    category: dict[str, Any], count: int, json_file: str, problems: list[Problem]
) -> tuple[tuple[int, int], ...] | None:
    edges = category.get("skeleton")
    if not edges:
        return None
    pairs = []
    for pair in edges:  # COCO's skeleton is 1-based
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, int) and 1 <= i <= count for i in pair)
        ):
            problems.append(
                Problem(json_file, None, f"skeleton edge {pair!r} is not a pair of keypoint numbers 1..{count}")
            )
            return None
        pairs.append((pair[0] - 1, pair[1] - 1))
    return tuple(pairs)


def _annotation_problem(annotation: dict[str, Any], image: dict[str, Any] | None, count: int) -> str | None:
    ident = f"annotation id {annotation.get('id')}"
    if image is None:
        return f"{ident}: image_id {annotation.get('image_id')} is not in `images`"
    where = f"{ident} (image {image.get('file_name')})"
    points = annotation.get("keypoints") or []
    if len(points) != 3 * count:
        return f"{where}: {len(points)} keypoint values; the category has {count} keypoints ({3 * count} values)"
    width, height = float(image.get("width") or 0), float(image.get("height") or 0)
    if width <= 0 or height <= 0:
        return f"image {image.get('file_name')}: no width and height"
    for j in range(count):
        x, y, v = points[3 * j : 3 * j + 3]
        if v and not (-TOLERANCE_PX <= x <= width + TOLERANCE_PX and -TOLERANCE_PX <= y <= height + TOLERANCE_PX):
            return f"{where}: keypoint {j} at ({x:g}, {y:g}) is outside the {width:g}x{height:g} image"
    box = annotation.get("bbox") or []
    if len(box) != 4 or box[2] < 0 or box[3] < 0:
        return f"{where}: bbox {box!r} is not [x, y, width, height]"
    return None


def image_base(split: str, file_names: list[str], names: set[str]) -> str:
    """The folder the split's `file_name`s are relative to: the candidate holding most of them."""
    candidates = (f"images/{split}", "images", split, "")
    return max(candidates, key=lambda base: sum(posixpath.join(base, f) in names for f in file_names[:50]))


def flip_order(names: tuple[str, ...]) -> tuple[int, ...]:
    """Each keypoint's index after a horizontal flip: names with left/right (l_/r_) swap, others stay."""
    index = {name: i for i, name in enumerate(names)}
    swaps = (("left", "right"), ("right", "left"), ("l_", "r_"), ("r_", "l_"))
    order = []
    for i, name in enumerate(names):
        partner = i
        for a, b in swaps:
            if a in name and name.replace(a, b, 1) in index:
                partner = index[name.replace(a, b, 1)]
                break
        order.append(partner)
    return tuple(order) if sorted(order) == list(range(len(names))) else tuple(range(len(names)))


def convert(root: Path, json_files: list[str], out: Path) -> Path:
    """The folder converted to the YOLO pose layout under `out` (labels by Ultralytics' `convert_coco`,
    images linked, each split's COCO JSON kept under annotations/ for the evaluation); returns data.yaml."""
    from ultralytics.data.converter import convert_coco

    files = LocalFiles(root)
    dataset = check(files, json_files)
    splits = load_splits(files, json_files)
    names = set(files.names())
    annotations = out / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    category_ids: dict[Any, int] = {}
    for _, coco in splits.values():
        for category in coco["categories"]:
            category_ids.setdefault(category["id"], dataset.class_names.index(str(category["name"])) + 1)
    for split, (_, coco) in splits.items():
        normalised = _renumbered(coco, category_ids)
        (annotations / f"{split}.json").write_text(json.dumps(normalised))
        base = image_base(split, [str(i["file_name"]) for i in coco["images"]], names)
        for image in coco["images"]:
            link = out / "images" / split / str(image["file_name"])
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to((root / base / str(image["file_name"])).resolve())
    # convert_coco writes labels/<json stem>/...: a fresh folder, as it renames one that exists
    converted = out / "_converted"
    convert_coco(str(annotations), str(converted), use_keypoints=True, cls91to80=False)
    for split in splits:
        (converted / "labels" / split).rename(_ensure_parent(out / "labels" / split))
    return write_yaml(out, dataset)


def _renumbered(coco: dict[str, Any], ids: dict[Any, int]) -> dict[str, Any]:
    """Category ids 1..N in class order (convert_coco's class is id - 1)."""
    return {
        **coco,
        "categories": [{**c, "id": ids[c["id"]]} for c in coco["categories"]],
        "annotations": [{**a, "category_id": ids.get(a.get("category_id"), 1)} for a in coco.get("annotations") or []],
    }


def _ensure_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_yaml(out: Path, dataset: KeypointDataset) -> Path:
    content: dict[str, Any] = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "kpt_shape": list(dataset.kpt_shape),
        "flip_idx": list(dataset.flip_idx or range(dataset.num_keypoints)),
        "names": dict(enumerate(dataset.class_names)),
    }
    if dataset.keypoint_names:
        content["kpt_names"] = {i: list(dataset.keypoint_names) for i in range(len(dataset.class_names))}
    if dataset.skeleton:
        content["skeleton"] = [list(edge) for edge in dataset.skeleton]
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path
