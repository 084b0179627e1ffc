"""Which torch device the model runs on (`POSE_DEVICE`)."""

from __future__ import annotations

import torch

from batch.errors import ModelLoadError


def choose_device(setting: str) -> torch.device:
    """`auto` takes CUDA when there is one; an explicit CUDA device that is absent is a start-up error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"POSE_DEVICE={setting!r} but no CUDA device is available")
    return device
