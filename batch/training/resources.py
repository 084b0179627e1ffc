"""What the instance offers the trainer: its GPUs (all of them, DDP when there are several) and the shared
memory DataLoader workers pass batches through.

Training containers may get a small /dev/shm (Docker's default is 64 MB) and DataLoader workers then die
with a bus error (sagemaker-python-sdk issues 937 and 5592). Each worker keeps `PREFETCH` batches of
uint8 images in shared memory, so the workers that fit are

    workers = floor(HEADROOM x shm bytes / (PREFETCH x per-GPU batch x 3 x imgsz^2)) / GPUs

and the trainer gets min(requested, that); 0 (load in the main process) when not even one fits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREFETCH = 2  # torch's DataLoader default prefetch_factor
HEADROOM = 0.5  # mosaic buffers, labels and the pinned-memory thread need the rest


@dataclass(frozen=True)
class Devices:
    device: str  # Ultralytics' `device`: "cpu", "0" or "0,1,2,3" (DDP)
    count: int  # GPUs used (0 on the CPU)

    @property
    def ddp(self) -> bool:
        return self.count > 1


def devices() -> Devices:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        return Devices("cpu", 0)
    return Devices(",".join(str(i) for i in range(count)), count)


def shared_memory_bytes(path: Path) -> int | None:
    """The size of the shared-memory filesystem, None where there is none to measure."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_blocks * stats.f_frsize


def fitting_workers(requested: int, *, shm_bytes: int | None, batch: int, imgsz: int, gpus: int) -> int:
    """DataLoader workers per GPU that fit in shared memory (module docstring)."""
    if shm_bytes is None or requested <= 0:
        return max(requested, 0)
    per_gpu_batch = max(1, batch // max(gpus, 1))
    per_worker = PREFETCH * per_gpu_batch * 3 * imgsz * imgsz
    fit = int(HEADROOM * shm_bytes // per_worker) // max(gpus, 1)
    return max(0, min(requested, fit))
