"""The per-epoch metrics line the container prints and the `MetricDefinitions` that catch it (SageMaker
applies each regex to every log line; the last match of each is the job's final value).

    [posebatch-metrics] epoch=3 epochs=10 train_box_loss=1.21 ... pose_map50_95=0.512 pose_map50=0.80 ...

After the last epoch Ultralytics validates the best checkpoint and the container prints one more line for
it (`final=1`), so a job's final metrics are those of the model it ships.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

PREFIX = "[posebatch-metrics]"
# name in the line and in MetricDefinitions -> Ultralytics' metrics key
VALIDATION = {
    "pose_map50_95": "metrics/mAP50-95(P)",
    "pose_map50": "metrics/mAP50(P)",
    "box_map50_95": "metrics/mAP50-95(B)",
    "box_map50": "metrics/mAP50(B)",
}
LOSSES = ("box_loss", "pose_loss", "kobj_loss", "cls_loss", "dfl_loss")
SPEED = "images_per_s"
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def names() -> list[str]:
    return ["epoch", *(f"train_{loss}" for loss in LOSSES), *VALIDATION, SPEED]


def metric_definitions() -> list[dict[str, str]]:
    """CreateTrainingJob's AlgorithmSpecification.MetricDefinitions for the line above."""
    return [{"Name": name, "Regex": rf"{re.escape(PREFIX)}.* {name}={_NUMBER}"} for name in names()]


def format_line(
    *,
    epoch: int,
    epochs: int,
    final: bool = False,
    losses: Mapping[str, float],
    validation: Mapping[str, float],
    images_per_s: float | None,
) -> str:
    values: dict[str, float] = {}
    for key, value in losses.items():
        values[f"train_{key.rpartition('/')[2]}"] = float(value)
    for name, key in VALIDATION.items():
        if key in validation:
            values[name] = float(validation[key])
    if images_per_s is not None:
        values[SPEED] = images_per_s
    body = " ".join(f"{k}={v:.6g}" for k, v in values.items() if math.isfinite(v))
    return f"{PREFIX} epoch={epoch} epochs={epochs}{' final=1' if final else ''} {body}"


def parse_line(line: str) -> dict[str, float]:
    """The values of one metrics line ({} for any other line): what MetricDefinitions extract."""
    if not line.startswith(PREFIX):
        return {}
    found = {}
    for token in line[len(PREFIX) :].split():
        key, sep, value = token.partition("=")
        if sep:
            try:
                found[key] = float(value)
            except ValueError:
                continue
    return found
