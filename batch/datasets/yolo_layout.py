"""Ultralytics' YOLO pose layout, checked before any job starts.

    data.yaml      kpt_shape: [K, 2|3], names, train, val; optional flip_idx, kpt_names ({0: [K names]}),
                   kpt_oks_sigmas (K values) and skeleton ([[a, b], ...], 0-based: PoseBatch's own key, for
                   drawing; Ultralytics ignores it)
    images/<split>/...   (or a .txt list of ./relative image paths)
    labels/<split>/...   one row per instance: class cx cy w h, then K x (x y [v]), all normalised to 0..1

The dataset's root is the folder that holds data.yaml (a `path:` in it is ignored: the folder moves to S3
and into the training container). Split paths are relative to it. Every problem names its file and line.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from batch.datasets.files import DatasetFiles
from batch.datasets.keypoint_set import KeypointDataset, SplitSummary
from batch.datasets.problems import DatasetError, Problem

YAML_NAME = "data.yaml"
# Ultralytics' own label check tolerates 1% beyond 0..1 (rounding in converters); so does this one.
TOLERANCE = 0.01
SPLITS = ("train", "val")
IMAGE_SUFFIXES = frozenset(
    ("avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpeg2000", "jpg", "mpo", "png", "tif", "tiff", "webp")
)


@dataclass
class _Yaml:
    file: str
    content: dict[str, Any]
    lines: dict[str, int]  # top-level key -> 1-based line

    def line(self, key: str) -> int | None:
        return self.lines.get(key)

    def problem(self, key: str, message: str) -> Problem:
        return Problem(self.file, self.line(key), message)


def find_yaml(names: Iterable[str]) -> str | None:
    """data.yaml at the root, else the one *.yaml / *.yml there."""
    top = [n for n in names if "/" not in n and n.rsplit(".", 1)[-1].lower() in ("yaml", "yml")]
    if YAML_NAME in top:
        return YAML_NAME
    return top[0] if len(top) == 1 else None


def check(files: DatasetFiles, yaml_file: str) -> KeypointDataset:
    """The dataset described by `yaml_file`; DatasetError listing every problem found."""
    parsed = _read_yaml(files, yaml_file)
    problems: list[Problem] = []
    kpt_shape = _kpt_shape(parsed, problems)
    class_names = _class_names(parsed, problems)
    count = kpt_shape[0] if kpt_shape else None
    keypoint_names = _keypoint_names(parsed, count, problems)
    flip_idx = _flip_idx(parsed, count, problems)
    sigmas = _sigmas(parsed, count, problems)
    skeleton = _skeleton(parsed, count, problems)
    names = files.names()
    split_images = {split: _split_images(parsed, split, set(names), files, problems) for split in SPLITS}
    if kpt_shape is None or class_names is None or any(not images for images in split_images.values()):
        raise DatasetError(files.location, problems)
    splits = _check_labels(files, parsed, set(names), split_images, kpt_shape, len(class_names), problems)
    if problems:
        raise DatasetError(files.location, problems)
    return KeypointDataset(
        layout="yolo",
        description_file=yaml_file,
        kpt_shape=kpt_shape,
        class_names=class_names,
        keypoint_names=keypoint_names,
        skeleton=skeleton,
        flip_idx=flip_idx,
        oks_sigmas=sigmas,
        splits=splits,
    )


def split_images(files: DatasetFiles, yaml_file: str) -> dict[str, list[str]]:
    """Each split's images (relative paths) of a dataset that passed `check`."""
    parsed = _read_yaml(files, yaml_file)
    names = set(files.names())
    problems: list[Problem] = []
    found = {split: _split_images(parsed, split, names, files, problems) for split in SPLITS}
    if problems:
        raise DatasetError(files.location, problems)
    return found


def _read_yaml(files: DatasetFiles, name: str) -> _Yaml:
    try:
        text = files.read_bytes(name).decode("utf-8-sig")
        node = yaml.compose(text)
        content = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise DatasetError(files.location, [Problem(name, None, "is not UTF-8 text")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise DatasetError(files.location, [Problem(name, line, f"is not valid YAML: {reason}")]) from None
    if not isinstance(content, dict) or not isinstance(node, yaml.MappingNode):
        raise DatasetError(files.location, [Problem(name, 1, "must be a YAML mapping (kpt_shape, names, train, val)")])
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
    return _Yaml(name, {str(k): v for k, v in content.items()}, lines)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kpt_shape(parsed: _Yaml, problems: list[Problem]) -> tuple[int, int] | None:
    value = parsed.content.get("kpt_shape")
    if value is None:
        problems.append(Problem(parsed.file, None, "no `kpt_shape: [K, 3]` (keypoints per instance, 2 or 3 dims)"))
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(_is_int(v) for v in value)
        or value[0] < 1
        or value[1] not in (2, 3)
    ):
        problems.append(parsed.problem("kpt_shape", f"kpt_shape {value!r} must be [K, 2] or [K, 3] with K >= 1"))
        return None
    return int(value[0]), int(value[1])


def _class_names(parsed: _Yaml, problems: list[Problem]) -> tuple[str, ...] | None:
    value = parsed.content.get("names")
    if isinstance(value, dict) and value and all(_is_int(k) for k in value):
        if sorted(value) != list(range(len(value))):
            problems.append(parsed.problem("names", f"names keys {sorted(value)} must be 0..{len(value) - 1}"))
            return None
        return tuple(str(value[i]) for i in range(len(value)))
    if isinstance(value, list) and value:
        return tuple(str(v) for v in value)
    problems.append(
        Problem(parsed.file, parsed.line("names"), "no class `names` (a list, or a mapping {0: person, ...})")
    )
    return None


def _keypoint_names(parsed: _Yaml, count: int | None, problems: list[Problem]) -> tuple[str, ...] | None:
    value = parsed.content.get("kpt_names")
    if value is None:
        return None
    if isinstance(value, dict):  # Ultralytics: {class index: [names]}
        value = next(iter(value.values()), None)
    if not isinstance(value, list) or (count is not None and len(value) != count):
        given = len(value) if isinstance(value, list) else "no list of"
        problems.append(parsed.problem("kpt_names", f"kpt_names lists {given} names; kpt_shape says {count} keypoints"))
        return None
    return tuple(str(v) for v in value)


def _flip_idx(parsed: _Yaml, count: int | None, problems: list[Problem]) -> tuple[int, ...] | None:
    value = parsed.content.get("flip_idx")
    if value is None or count is None:
        return None
    if not isinstance(value, list) or sorted(value) != list(range(count)) or not all(_is_int(v) for v in value):
        problems.append(
            parsed.problem(
                "flip_idx",
                f"flip_idx {value!r} is not a permutation of 0..{count - 1} (each keypoint's index after a "
                "horizontal flip, e.g. left and right swapped)",
            )
        )
        return None
    return tuple(int(v) for v in value)


def _sigmas(parsed: _Yaml, count: int | None, problems: list[Problem]) -> tuple[float, ...] | None:
    value = parsed.content.get("kpt_oks_sigmas")
    if value is None or count is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != count
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        problems.append(parsed.problem("kpt_oks_sigmas", f"kpt_oks_sigmas must be {count} positive numbers"))
        return None
    return tuple(float(v) for v in value)


def _skeleton(parsed: _Yaml, count: int | None, problems: list[Problem]) -> tuple[tuple[int, int], ...] | None:
    value = parsed.content.get("skeleton")
    if value is None or count is None:
        return None
    edges = []
    for pair in value if isinstance(value, list) else [value]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(i) and 0 <= i < count for i in pair)):
            problems.append(
                parsed.problem("skeleton", f"skeleton edge {pair!r} is not a pair of keypoint indices 0..{count - 1}")
            )
            return None
        edges.append((int(pair[0]), int(pair[1])))
    return tuple(edges)


def _split_images(
    parsed: _Yaml, split: str, names: set[str], files: DatasetFiles, problems: list[Problem]
) -> list[str]:
    value = parsed.content.get(split)
    if value is None:
        problems.append(Problem(parsed.file, None, f"no `{split}:` split (a folder of images or a .txt list)"))
        return []
    images: list[str] = []
    before = len(problems)
    for entry in value if isinstance(value, list) else [value]:
        images.extend(_entry_images(parsed, split, str(entry), names, files, problems))
    if not images and len(problems) == before:  # e.g. an empty .txt list
        problems.append(parsed.problem(split, f"the {split} split ({value}) holds no images: an empty split"))
    return images


def _entry_images(
    parsed: _Yaml, split: str, entry: str, names: set[str], files: DatasetFiles, problems: list[Problem]
) -> list[str]:
    if entry.startswith("/") or entry.startswith("s3://") or ".." in entry.split("/"):
        problems.append(
            parsed.problem(
                split, f"{split}: {entry} must be a path inside the dataset folder, relative to {parsed.file}"
            )
        )
        return []
    rel = posixpath.normpath(entry).lstrip("./") if entry not in (".", "./") else ""
    if rel in names and rel.lower().endswith(".txt"):
        return _listed_images(rel, names, files, problems)
    prefix = rel.rstrip("/") + "/" if rel else ""
    found = [n for n in sorted(names) if n.startswith(prefix) and _is_image(n)]
    if not found:
        problem = "holds no images: an empty split" if files.is_dir(rel) else "does not exist in the dataset folder"
        problems.append(parsed.problem(split, f"{split}: {entry} {problem}"))
    return found


def _listed_images(list_file: str, names: set[str], files: DatasetFiles, problems: list[Problem]) -> list[str]:
    """A .txt list: one image per line, `./`-relative to the list's folder (Ultralytics' rule)."""
    base = posixpath.dirname(list_file)
    images = []
    for number, line in enumerate(files.read_bytes(list_file).decode("utf-8-sig").splitlines(), start=1):
        path = line.strip()
        if not path:
            continue
        if not path.startswith("./"):
            problems.append(
                Problem(list_file, number, f"{path}: list entries must start with ./ (relative to the list's folder)")
            )
            continue
        rel = posixpath.normpath(posixpath.join(base, path[2:]))
        if rel not in names:
            problems.append(Problem(list_file, number, f"{path}: no such image in the dataset folder"))
        else:
            images.append(rel)
    return images


def _is_image(name: str) -> bool:
    return name.rsplit(".", 1)[-1].lower() in IMAGE_SUFFIXES


def label_path(image: str) -> str:
    """Ultralytics' rule (`img2label_paths`): the last `images/` folder becomes `labels/`, the suffix `.txt`."""
    head, sep, tail = ("/" + image).rpartition("/images/")
    path = f"{head}/labels/{tail}" if sep else "/" + image
    return path.lstrip("/").rsplit(".", 1)[0] + ".txt"


def _check_labels(
    files: DatasetFiles,
    parsed: _Yaml,
    names: set[str],
    split_images: dict[str, list[str]],
    kpt_shape: tuple[int, int],
    num_classes: int,
    problems: list[Problem],
) -> dict[str, SplitSummary]:
    expected = 5 + kpt_shape[0] * kpt_shape[1]
    columns: Counter[int] = Counter()
    wrong_rows: list[Problem] = []
    value_problems: list[Problem] = []
    splits: dict[str, SplitSummary] = {}
    for split, images in split_images.items():
        present = [label for label in (label_path(image) for image in images) if label in names]
        instances = labelled = 0
        for label, raw in files.read_many(present):
            rows = _rows(label, raw, value_problems)
            labelled += bool(rows)
            instances += len(rows)
            for number, values in rows:
                columns[len(values)] += 1
                if len(values) != expected:
                    wrong_rows.append(
                        Problem(label, number, f"{len(values)} values; kpt_shape {list(kpt_shape)} needs {expected}")
                    )
                else:
                    value_problems.extend(_row_values(label, number, values, kpt_shape, num_classes))
        splits[split] = SplitSummary(images=len(images), labelled_images=labelled, instances=instances)
        if not instances:
            problems.append(
                parsed.problem(split, f"the {split} split has {len(images)} images but no label rows under labels/")
            )
    if wrong_rows and len(columns) == 1:  # every row agrees with every other, not with kpt_shape
        (count,) = columns
        example = wrong_rows[0]
        problems.append(
            parsed.problem(
                "kpt_shape",
                f"kpt_shape {list(kpt_shape)} needs {expected} values per label row (class, 4 box values, "
                f"{kpt_shape[0]} x {kpt_shape[1]}), but every row has {count} (e.g. {example.file}:{example.line})"
                + _guess(count),
            )
        )
    else:
        problems.extend(wrong_rows)
    problems.extend(value_problems)
    return splits


def _guess(count: int) -> str:
    body = count - 5
    options = [f"[{body // d}, {d}]" for d in (3, 2) if body > 0 and body % d == 0]
    return f"; the rows fit kpt_shape {' or '.join(options)}" if options else ""


def _rows(label: str, raw: bytes, problems: list[Problem]) -> list[tuple[int, list[float]]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(Problem(label, None, "is not UTF-8 text"))
        return []
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            rows.append((number, [float(t) for t in tokens]))
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            problems.append(Problem(label, number, f"{bad!r} is not a number"))
    return rows


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _row_values(
    label: str, number: int, values: list[float], kpt_shape: tuple[int, int], num_classes: int
) -> list[Problem]:
    found = []
    cls = values[0]
    if cls != int(cls) or not 0 <= cls < num_classes:
        found.append(
            Problem(label, number, f"class {values[0]:g} is not one of 0..{num_classes - 1} (data.yaml names)")
        )
    box = values[1:5]
    low, high = -TOLERANCE, 1 + TOLERANCE
    if not all(low <= v <= high for v in box) or box[2] < 0 or box[3] < 0:
        found.append(Problem(label, number, f"box {_fmt(box)} is outside 0..1 (coordinates must be normalised)"))
    count, dims = kpt_shape
    points = values[5:]
    outside = [j for j in range(count) if not (low <= points[j * dims] <= high and low <= points[j * dims + 1] <= high)]
    if outside:
        j = outside[0]
        xy = points[j * dims : j * dims + 2]
        found.append(
            Problem(
                label,
                number,
                f"keypoint {j} at {_fmt(xy)} is outside 0..1 ({len(outside)} keypoint(s); coordinates must be "
                "normalised by the image size)",
            )
        )
    return found


def _fmt(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
