"""What the job leaves in /opt/ml/model: exactly what the serving container loads from model.tar.gz,
`<job>.pt` (so every result's `model` names the run that made it) and `keypoints.yaml` with the names and
skeleton the served results carry. No repacking between training and `transform`/`deploy`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from batch.datasets.keypoint_set import KeypointDataset
from batch.inference.keypoints import KEYPOINTS_FILE, Declared, keypoint_set

READABLE = 0o644  # the serving image runs as a non-root user


def write(model_dir: Path, job_name: str, checkpoint: Path, dataset: KeypointDataset) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / f"{job_name}.pt"
    shutil.copyfile(checkpoint, target)
    os.chmod(target, READABLE)
    keypoints = keypoint_set(dataset.num_keypoints, Declared(dataset.keypoint_names, dataset.skeleton), Declared())
    content = {"names": list(keypoints.names), "skeleton": [list(edge) for edge in keypoints.skeleton]}
    path = model_dir / KEYPOINTS_FILE
    path.write_text(
        "# Written by the training job: the dataset's keypoint names and skeleton (0-based edges).\n"
        + yaml.safe_dump(content, sort_keys=False, default_flow_style=None)
    )
    os.chmod(path, READABLE)
    return target
