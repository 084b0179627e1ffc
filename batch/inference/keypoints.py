"""Keypoint names and skeleton edges for any keypoint set (people, dogs, tigers, hands...).

Each of the two is taken from the first of these that has it:

1. the checkpoint's own metadata: `kpt_names` (what Ultralytics' pose trainer stores from the dataset
   yaml, per class; its "0", "1", ... stand-ins for a dataset without names are not names) and a
   `skeleton`, in the model's attributes or its yaml (Ultralytics stores none itself, but a checkpoint
   may carry one);
2. `keypoints.yaml` beside the checkpoint (`pose-batch package-model` puts it into model.tar.gz, so it
   lands in /opt/ml/model next to the .pt):

       # one name per keypoint, in the model's keypoint order
       names: [nose, left_eye, right_eye]
       # pairs of 0-based keypoint indices to connect when drawing (optional)
       skeleton: [[0, 1], [0, 2]]

3. COCO's names and skeleton for a 17-keypoint model;
4. generic names (`keypoint_<i>`) and no skeleton.

A keypoints.yaml that does not fit the model (wrong count, indices out of range) stops the server at
start-up with a message naming the file: a wrong skeleton drawn on every image is worse than none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batch.errors import ModelLoadError

KEYPOINTS_FILE = "keypoints.yaml"

COCO_KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# COCO's skeleton (person_keypoints.json), 0-based.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

Edge = tuple[int, int]


@dataclass(frozen=True)
class KeypointSet:
    names: tuple[str, ...]
    skeleton: tuple[Edge, ...]
    origin: str  # where they came from, for the start-up log: "checkpoint", "keypoints.yaml", "COCO", "generic"


@dataclass(frozen=True)
class Declared:
    """Names and skeleton as one source declares them; None where it says nothing."""

    names: tuple[str, ...] | None = None
    skeleton: tuple[Edge, ...] | None = None


def keypoint_set(count: int, checkpoint: Declared, beside: Declared) -> KeypointSet:
    """Each field from the first source that has it: checkpoint, keypoints.yaml, COCO (17), generic."""
    coco = count == len(COCO_KEYPOINT_NAMES)
    names = checkpoint.names or beside.names or (COCO_KEYPOINT_NAMES if coco else None)
    edges = checkpoint.skeleton if checkpoint.skeleton is not None else beside.skeleton
    if edges is None:
        edges = COCO_SKELETON if coco and names == COCO_KEYPOINT_NAMES else ()
    if checkpoint.names is not None or checkpoint.skeleton is not None:
        origin = "checkpoint"
    elif beside.names is not None or beside.skeleton is not None:
        origin = KEYPOINTS_FILE
    else:
        origin = "COCO" if coco else "generic"
    return KeypointSet(names or tuple(f"keypoint_{i}" for i in range(count)), tuple(edges), origin)


def from_checkpoint(module: Any, count: int) -> Declared:
    """What an Ultralytics pose model carries: `kpt_names` ({class: [names]} or a list) and any `skeleton`,
    as attributes or in its yaml. Entries that do not fit `count` are ignored (they describe another set)."""
    config = getattr(module, "yaml", None) or {}
    names = _names(getattr(module, "kpt_names", None) or config.get("kpt_names"))
    if names is not None and (len(names) != count or all(n.isdigit() for n in names)):
        names = None  # the trainer's "0", "1", ... stand-ins, or a set of another size
    try:
        edges = _edges(getattr(module, "skeleton", None) or config.get("skeleton"), count, "the checkpoint")
    except ModelLoadError:
        edges = None
    return Declared(names, edges)


def from_file(path: Path, count: int) -> Declared:
    """keypoints.yaml (module docstring). Absent: nothing declared. Malformed or unfit: ModelLoadError."""
    if not path.is_file():
        return Declared()
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{path} could not be read as YAML: {exc}") from None
    if not isinstance(content, Mapping) or not set(content) <= {"names", "skeleton"}:
        raise ModelLoadError(f"{path} must be a mapping with `names` and/or `skeleton` (see README)")
    names = _names(content.get("names"))
    if content.get("names") is not None and (names is None or len(names) != count):
        given = len(names) if names is not None else "no usable"
        raise ModelLoadError(f"{path} lists {given} keypoint names; the model has {count} keypoints")
    return Declared(names, _edges(content.get("skeleton"), count, str(path)))


def _names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, Mapping):  # Ultralytics: {class index: [names]}; one set for every class
        value = next(iter(value.values()), None)
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return tuple(str(name) for name in value)
    return None


def _edges(value: object, count: int, where: str) -> tuple[Edge, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ModelLoadError(f"{where}: `skeleton` must be a list of [a, b] index pairs")
    edges = []
    for pair in value:
        if (
            not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(i, int) and 0 <= i < count for i in pair)
        ):
            raise ModelLoadError(f"{where}: skeleton edge {pair!r} is not a pair of indices in 0..{count - 1}")
        edges.append((int(pair[0]), int(pair[1])))
    return tuple(edges)
