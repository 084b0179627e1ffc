"""The Ultralytics trainer, called directly, with callbacks for what SageMaker needs and nothing forked:

- a metrics line per epoch (`metrics.py`) for the job's MetricDefinitions, with the epoch's images/s;
- each checkpoint Ultralytics saves (last.pt, best.pt) copied into /opt/ml/checkpoints, which SageMaker
  syncs with CheckpointConfig.S3Uri: a managed spot job that restarts finds it there and resumes from the
  last finished epoch (or, when the last epoch had finished, ships that run's best model without training).

The callbacks are module-level objects, so Ultralytics' DDP launcher can pickle them into its workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.training import metrics

log = logging.getLogger(__name__)

LAST, BEST = "last.pt", "best.pt"
# Ultralytics turns an experiment tracker on whenever its package is importable; the SageMaker SDK (the
# `pipeline` extra) installs mlflow, which would then start runs in the working directory. A job's output
# is the same with or without it: its metrics go to the job's log and MetricDefinitions.
TRACKING_INTEGRATIONS = ("ultralytics.utils.callbacks.mlflow",)


def drop_tracking_integrations(trainer: Any) -> None:
    """`on_pretrain_routine_start`: remove the trackers' callbacks Ultralytics added to this trainer."""
    for event, functions in trainer.callbacks.items():
        trainer.callbacks[event] = [f for f in functions if getattr(f, "__module__", "") not in TRACKING_INTEGRATIONS]


@dataclass(frozen=True)
class TrainPlan:
    data_yaml: Path
    base_checkpoint: Path
    arguments: dict[str, Any]  # Ultralytics train arguments
    run_dir: Path
    checkpoint_dir: Path


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path  # the model to ship: the run's best (Ultralytics' choice), else its last
    run_dir: Path
    resumed_from_epoch: int | None  # the first epoch trained this time, when resumed
    trained: bool  # False when the checkpoints held a finished run


@dataclass
class EpochReporter:
    """Prints the metrics line; times each epoch's training loop (validation excluded) for images/s."""

    started: float = 0.0
    images_per_s: float | None = None

    def epoch_start(self, trainer: Any) -> None:
        self.started = time.perf_counter()

    def epoch_end(self, trainer: Any) -> None:
        seconds = time.perf_counter() - self.started
        images = len(trainer.train_loader.dataset)
        self.images_per_s = images / seconds if seconds > 0 else None

    def fit_epoch_end(self, trainer: Any) -> None:
        from ultralytics.utils import RANK

        if RANK not in (-1, 0):
            return
        losses = trainer.label_loss_items(trainer.tloss) if trainer.tloss is not None else {}
        epochs = int(trainer.epochs)
        final = int(trainer.epoch) + 1 > epochs  # Ultralytics' validation of best.pt after the last epoch
        line = metrics.format_line(
            epoch=min(int(trainer.epoch) + 1, epochs),
            epochs=epochs,
            final=final,
            losses={k: v for k, v in losses.items() if k.startswith("train/")},
            validation=trainer.metrics or {},
            images_per_s=self.images_per_s,
        )
        print(line, flush=True)


@dataclass
class CheckpointSync:
    """Copies each saved checkpoint into the synced folder (written aside, then renamed into place)."""

    target: Path
    copied: list[str] = field(default_factory=list)

    def model_saved(self, trainer: Any) -> None:
        self.target.mkdir(parents=True, exist_ok=True)
        for source in (Path(trainer.last), Path(trainer.best)):
            if source.is_file():
                partial = self.target / f".{source.name}.partial"
                shutil.copyfile(source, partial)
                os.replace(partial, self.target / source.name)
                self.copied.append(source.name)


def saved_progress(checkpoint: Path) -> tuple[int, int] | None:
    """(epochs finished, epochs planned) of a resumable checkpoint; None if it is not one."""
    from ultralytics.utils.patches import torch_load

    try:
        state = torch_load(checkpoint, map_location="cpu")
    except Exception as exc:
        log.warning("ignoring checkpoint %s: %s", checkpoint, exc)
        return None
    epoch = state.get("epoch", -1)
    planned = (state.get("train_args") or {}).get("epochs")
    if not isinstance(epoch, int) or epoch < 0 or not isinstance(planned, int) or state.get("optimizer") is None:
        return None
    return epoch + 1, planned


def train(plan: TrainPlan) -> TrainResult:
    from ultralytics import YOLO

    saved = plan.checkpoint_dir / LAST
    progress = saved_progress(saved) if saved.is_file() else None
    if progress is not None and progress[0] >= progress[1]:
        best = plan.checkpoint_dir / BEST
        log.info("the checkpoints hold a finished run (%d of %d epochs): shipping it", *progress)
        return TrainResult(best if best.is_file() else saved, plan.run_dir, None, trained=False)

    reporter = EpochReporter()
    sync = CheckpointSync(plan.checkpoint_dir)
    common = {**plan.arguments, "data": str(plan.data_yaml), "save_dir": str(plan.run_dir)}
    if progress is not None:
        log.info("resuming from %s: epoch %d of %d", saved, progress[0] + 1, progress[1])
        resume_from = plan.run_dir.parent / f"resume-{LAST}"
        resume_from.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved, resume_from)
        yolo = YOLO(str(resume_from), task="pose")
        arguments: dict[str, Any] = {**common, "resume": True}
    else:
        yolo = YOLO(str(plan.base_checkpoint), task="pose")
        arguments = {**common, "exist_ok": True}
    yolo.add_callback("on_pretrain_routine_start", drop_tracking_integrations)
    yolo.add_callback("on_train_epoch_start", reporter.epoch_start)
    yolo.add_callback("on_train_epoch_end", reporter.epoch_end)
    yolo.add_callback("on_fit_epoch_end", reporter.fit_epoch_end)
    yolo.add_callback("on_model_save", sync.model_saved)
    yolo.train(**arguments)
    weights = plan.run_dir / "weights"
    best = weights / BEST if (weights / BEST).is_file() else weights / LAST
    if not best.is_file():
        raise RuntimeError(f"Ultralytics finished without a checkpoint in {weights}")
    return TrainResult(best, plan.run_dir, progress[0] + 1 if progress else None, trained=True)
