"""Fine-tuning defaults that keep what the pretrained model knew, scaled with the run's length.

Ultralytics' own defaults are made for training from scratch. Measured on COCO-val-mini (59 photos trained,
20 held out, imgsz 320, Ultralytics' pose mAP50-95 on the held-out 20; pretrained 0.479):

    optimizer=auto (AdamW at 0.002), 1 epoch        0.000
    SGD lr0=0.01, Ultralytics' warm-up, 10 epochs   0.359
    SGD lr0=0.01, bias warm-up at lr0, 10 epochs    0.328
    SGD lr0=0.002, 1 epoch                          0.527
    SGD lr0=0.002, bias warm-up at lr0, 10 epochs   0.486

`optimizer=auto` ignores `lr0` and takes AdamW on short runs, whose first steps move every weight by about the
learning rate whatever its gradient; SGD at Ultralytics' 0.01 still unlearns in ten optimizer steps. So:

- optimizer SGD (Ultralytics' momentum and Nesterov);
- lr0 = 0.01 x sqrt(steps / 3000), between 0.002 and 0.01, where steps = optimizer steps of the whole run,
  ceil(train images / max(batch, nbs)) x epochs (Ultralytics accumulates gradients up to nbs = 64 images).
  Tens to hundreds of images for a few epochs train at 0.002; thousands of images for a hundred epochs
  reach Ultralytics' 0.01, where the run is long enough to recover from it;
- warm-up over a tenth of the run (at most Ultralytics' 3 epochs), the bias rate starting at 0 rather
  than 0.1 (as Ultralytics' own `auto` does).

Every one of these is only a default: a hyperparameter of the same name wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

LR_SHORT = 0.002
LR_LONG = 0.01
LONG_RUN_STEPS = 3000
NOMINAL_BATCH = 64  # Ultralytics' nbs
WARMUP_SHARE = 0.1
MAX_WARMUP_EPOCHS = 3.0


def optimizer_steps(train_images: int, epochs: int, batch: int, nbs: int = NOMINAL_BATCH) -> int:
    per_epoch = math.ceil(max(train_images, 1) / max(batch, nbs, 1))
    return per_epoch * max(epochs, 1)


def defaults(*, train_images: int, epochs: int, batch: int, nbs: int = NOMINAL_BATCH) -> dict[str, Any]:
    steps = optimizer_steps(train_images, epochs, batch, nbs)
    lr0 = min(LR_LONG, max(LR_SHORT, LR_LONG * math.sqrt(steps / LONG_RUN_STEPS)))
    return {
        "optimizer": "SGD",
        "lr0": round(lr0, 6),
        "warmup_epochs": round(min(MAX_WARMUP_EPOCHS, WARMUP_SHARE * epochs), 3),
        "warmup_bias_lr": 0.0,
    }


def with_defaults(user: Mapping[str, Any], *, train_images: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the train arguments, the defaults that were applied): the user's arguments win."""
    from batch.training.hyperparameters import known_arguments

    known = known_arguments()
    epochs = int(user.get("epochs", known["epochs"]))
    batch = user.get("batch", known["batch"])
    batch = int(batch) if isinstance(batch, int | float) and batch >= 1 else int(known["batch"])
    nbs = int(user.get("nbs", known["nbs"]))
    chosen = {k: v for k, v in defaults(train_images=train_images, epochs=epochs, batch=batch, nbs=nbs).items()}
    applied = {k: v for k, v in chosen.items() if k not in user}
    return {**applied, **user}, applied
