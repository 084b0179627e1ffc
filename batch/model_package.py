"""The model artifact: resolving a checkpoint (a file, or a model name Ultralytics downloads), packing it
into the `model.tar.gz` SageMaker unpacks into /opt/ml/model, and uploading it."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import yaml

from batch.inference.keypoints import KEYPOINTS_FILE

MODEL_KEY = "models/posebatch/model.tar.gz"
DEFAULT_MODEL = "yolo11n-pose.pt"  # downloaded by Ultralytics when no checkpoint is given


def package_checkpoint(checkpoint: Path, output: Path) -> Path:
    """The checkpoint at the archive's root, so it lands at /opt/ml/model/<name>.pt (found by the container),
    with the `keypoints.yaml` beside it when there is one (names and skeleton of a non-COCO keypoint set;
    `batch/inference/keypoints.py`), checked before it is packed."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if checkpoint.suffix != ".pt":
        raise ValueError(f"expected an Ultralytics .pt checkpoint, got {checkpoint.name}")
    keypoints = keypoints_file_for(checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output, "w:gz") as tar:
        tar.add(checkpoint, arcname=checkpoint.name, filter=_readable_by_the_container)
        if keypoints is not None:
            tar.add(keypoints, arcname=KEYPOINTS_FILE, filter=_readable_by_the_container)
    return output


def keypoints_file_for(checkpoint: Path) -> Path | None:
    """The keypoints.yaml beside `checkpoint`, if any; ValueError if it is malformed (a YAML mapping of
    `names` and/or `skeleton`). Whether it fits the model's keypoint count is checked when the container
    loads the model (that needs the checkpoint loaded)."""
    path = checkpoint.parent / KEYPOINTS_FILE
    if not path.is_file():
        return None
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(content, dict) or not content or not set(content) <= {"names", "skeleton"}:
        raise ValueError(f"{path} must be a mapping with `names` and/or `skeleton` (see README, keypoint sets)")
    return path


def upload_model(s3: Any, bucket: str, checkpoint: Path, workdir: Path) -> str:
    """Package the checkpoint as SageMaker's model.tar.gz and upload it; returns its S3 URI."""
    archive = package_checkpoint(checkpoint, workdir / "model.tar.gz")
    s3.upload_file(str(archive), bucket, MODEL_KEY)
    return f"s3://{bucket}/{MODEL_KEY}"


def checkpoint_from(value: str | None) -> Path:
    """A local checkpoint file: the path given, or an Ultralytics model name downloaded by Ultralytics
    (default yolo11n-pose.pt); a clear error when neither works (no such file, no internet)."""
    name = value or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.parent != Path(".") or path.suffix != ".pt":
        raise SystemExit(f"model checkpoint {path} does not exist")
    from ultralytics.utils.downloads import attempt_download_asset

    try:
        downloaded = Path(attempt_download_asset(name))
    except Exception as exc:
        downloaded, reason = Path(name), str(exc)
    else:
        reason = "the download produced no file"
    if not downloaded.is_file():
        raise SystemExit(
            f"no model: {name!r} is not a file and Ultralytics could not download it ({reason}); "
            "pass --model PATH/TO/checkpoint.pt or set POSE_MODEL"
        )
    return downloaded


def _readable_by_the_container(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """SageMaker unpacks as root, keeping these modes; the image serves as a non-root user."""
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
    return info
