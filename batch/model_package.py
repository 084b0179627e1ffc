"""Packing a checkpoint into the `model.tar.gz` SageMaker unpacks into /opt/ml/model."""

from __future__ import annotations

import tarfile
from pathlib import Path


def package_checkpoint(checkpoint: Path, output: Path) -> Path:
    """The checkpoint at the archive's root, so it lands at /opt/ml/model/<name>.pt (found by the container)."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if checkpoint.suffix != ".pt":
        raise ValueError(f"expected an Ultralytics .pt checkpoint, got {checkpoint.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output, "w:gz") as tar:
        tar.add(checkpoint, arcname=checkpoint.name, filter=_readable_by_the_container)
    return output


def _readable_by_the_container(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """SageMaker unpacks as root, keeping these modes; the image serves as a non-root user."""
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
    return info
