"""Finding and loading the pose checkpoint.

Order: `POSE_MODEL` (a path, a path relative to the model directory, or an Ultralytics model name
that Ultralytics downloads), else the one `*.pt` checkpoint in the model directory (`/opt/ml/model`,
where SageMaker unpacks model.tar.gz; `SM_MODEL_DIR` overrides). Every failure names what was tried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch.errors import ModelLoadError
from batch.inference.keypoints import KEYPOINTS_FILE, Declared, from_checkpoint, from_file, keypoint_set
from batch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    source: str  # what was loaded: a path or an Ultralytics model name
    name: str  # shown in results
    num_keypoints: int
    keypoint_dims: int  # 3 (x, y, visibility) or 2 (x, y)
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    num_classes: int
    stride: int
    end2end: bool


def resolve_checkpoint(settings: Settings) -> str:
    if settings.pose_model:
        given = Path(settings.pose_model).expanduser()
        candidates = [given] if given.is_absolute() else [given, settings.model_dir / given]
        for candidate in candidates:
            if candidate.is_file():
                return str(candidate)
        if given.parent == Path(".") and given.suffix in ("", ".pt"):
            return settings.pose_model  # a model name: Ultralytics downloads it (needs internet)
        tried = ", ".join(str(c) for c in candidates)
        raise ModelLoadError(f"POSE_MODEL={settings.pose_model!r} does not exist (tried {tried})")
    model_dir = settings.model_dir
    if not model_dir.is_dir():
        raise ModelLoadError(
            f"no model: POSE_MODEL is unset and the model directory {model_dir} does not exist; set POSE_MODEL "
            "to a checkpoint path or an Ultralytics pose model name, or unpack model.tar.gz there (SM_MODEL_DIR)"
        )
    checkpoints = sorted(p for p in model_dir.rglob("*.pt") if p.is_file())
    if len(checkpoints) == 1:
        return str(checkpoints[0])
    if not checkpoints:
        found = ", ".join(sorted(p.name for p in model_dir.iterdir())[:10]) or "nothing"
        raise ModelLoadError(f"no model: POSE_MODEL is unset and {model_dir} holds no *.pt checkpoint (found: {found})")
    names = ", ".join(str(p.relative_to(model_dir)) for p in checkpoints)
    raise ModelLoadError(f"{model_dir} holds several checkpoints ({names}); set POSE_MODEL to choose one")


def load_yolo(source: str) -> Any:
    """The Ultralytics model, checked to be a pose model."""
    from ultralytics import YOLO

    try:
        yolo = YOLO(source, task="pose")
    except Exception as exc:
        hint = "" if Path(source).exists() else " (not a file: Ultralytics tried to download it; no internet?)"
        raise ModelLoadError(f"could not load pose model {source!r}{hint}: {exc}") from exc
    if getattr(yolo, "task", None) != "pose" or not hasattr(yolo.model, "kpt_shape"):
        raise ModelLoadError(f"{source!r} is a {getattr(yolo, 'task', 'unknown')} model, not a pose model")
    return yolo


def describe(yolo: Any, source: str) -> ModelInfo:
    module = yolo.model
    count, dims = (int(v) for v in module.kpt_shape)
    # Names and skeleton: the checkpoint's own, else keypoints.yaml beside it, else COCO's or generic.
    beside = from_file(Path(source).parent / KEYPOINTS_FILE, count) if Path(source).is_file() else Declared()
    keypoints = keypoint_set(count, from_checkpoint(module, count), beside)
    log.info("%d keypoints; names and skeleton (%d edges) from %s", count, len(keypoints.skeleton), keypoints.origin)
    return ModelInfo(
        source=source,
        name=Path(source).name,
        num_keypoints=count,
        keypoint_dims=dims,
        keypoint_names=keypoints.names,
        skeleton=keypoints.skeleton,
        num_classes=len(module.names),
        stride=int(max(module.stride)) if hasattr(module, "stride") else 32,
        end2end=bool(getattr(module, "end2end", False)),
    )
