"""`container/serve train`: one SageMaker training job, start to end.

    /opt/ml/input/config/hyperparameters.json   Ultralytics train arguments, as strings
    /opt/ml/input/data/dataset/                 YOLO pose layout or COCO keypoints folder
    /opt/ml/input/data/model/                   the base checkpoint (.pt, or a model.tar.gz)
    /opt/ml/checkpoints/                        last.pt / best.pt, synced with S3; resumed from
    /opt/ml/model/<job>.pt, keypoints.yaml       what serving loads (model.tar.gz)
    /opt/ml/output/data/training.json           the arguments used, the defaults applied, the dataset
    /opt/ml/output/failure                      why it failed (the job's FailureReason)

One instance, every GPU on it (DDP when there are several); the DataLoader workers fit /dev/shm.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import tarfile
from pathlib import Path
from types import FrameType
from typing import Any

from batch.settings import JobSettings
from batch.training import failure, finetune, hyperparameters, model_output, resources
from batch.training.environment import TrainingEnvironment
from batch.training.trainer import TrainPlan, train

log = logging.getLogger("batch.training")

DATASET_CHANNEL = "dataset"
MODEL_CHANNEL = "model"
# What the container sets unless a hyperparameter says otherwise: no plots (nobody sees them in a job, and
# drawing would fetch fonts from the internet).
CONTAINER_DEFAULTS: dict[str, Any] = {"plots": False, "verbose": True}
EXIT_STOPPED = 143  # 128 + SIGTERM


class Stopped(Exception):
    """SIGTERM: StopTrainingJob, or a spot interruption."""


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = JobSettings.from_env()
    environment = TrainingEnvironment.load(settings)
    signal.signal(signal.SIGTERM, _stop)
    try:
        run(environment, settings)
    except Stopped:
        log.warning("stopped: the checkpoints of the finished epochs are in %s", environment.checkpoint_dir)
        return EXIT_STOPPED
    except Exception as exc:
        log.exception("training failed")
        failure.write(environment.failure_file, failure.reason(exc))
        return 1
    return 0


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped()


def run(environment: TrainingEnvironment, settings: JobSettings | None = None) -> Path:
    if len(environment.hosts) > 1:
        raise failure.TrainingRefused(
            f"InstanceCount {len(environment.hosts)}: PoseBatch trains on one instance and uses all of its GPUs "
            "(DDP); set InstanceCount to 1 and pick an instance type with more GPUs to train faster."
        )
    user = hyperparameters.parse(environment.hyperparameters)
    dataset_dir = _channel(environment, DATASET_CHANNEL)
    from batch.datasets.check import prepare

    data_yaml, dataset = prepare(dataset_dir, environment.work_dir / "dataset")
    log.info("dataset: %s", dataset.summary())
    base = base_checkpoint(_channel(environment, MODEL_CHANNEL), environment.work_dir / "base")
    devices = resources.devices()
    arguments, applied = finetune.with_defaults(
        {**CONTAINER_DEFAULTS, **user}, train_images=dataset.splits["train"].images
    )
    arguments.setdefault("device", devices.device)
    shm = resources.shared_memory_bytes((settings or JobSettings.from_env()).shm_path)
    arguments["workers"] = _workers(arguments, shm, devices)
    log.info("fine-tuning defaults applied: %s", applied or "none (all set by hyperparameters)")
    plan = TrainPlan(
        data_yaml=data_yaml,
        base_checkpoint=base,
        arguments=arguments,
        run_dir=environment.work_dir / "run",
        checkpoint_dir=environment.checkpoint_dir,
    )
    result = train(plan)
    shipped = model_output.write(environment.model_dir, environment.job_name, result.checkpoint, dataset)
    _write_summary(environment, arguments, applied, dataset.summary(), base, result.resumed_from_epoch)
    log.info("model written: %s", shipped)
    return shipped


def _channel(environment: TrainingEnvironment, name: str) -> Path:
    path = environment.channel(name)
    if path is None or not path.is_dir() or not any(path.iterdir()):
        raise failure.TrainingRefused(
            f"the `{name}` input channel is missing or empty (expected under {environment.root}/input/data/{name}); "
            "pose-batch train sends the dataset as `dataset` and the base checkpoint as `model`"
        )
    return path


def base_checkpoint(channel: Path, scratch: Path) -> Path:
    """The one .pt in the channel, or inside the one model.tar.gz there (a package's model data)."""
    from batch.inference.model_source import load_yolo

    archives = sorted(channel.rglob("*.tar.gz"))
    if archives and not any(channel.rglob("*.pt")):
        scratch.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0], "r:gz") as tar:
            tar.extractall(scratch, filter="data")
        channel = scratch
    checkpoints = sorted(channel.rglob("*.pt"))
    if len(checkpoints) != 1:
        found = ", ".join(p.name for p in checkpoints) or "none"
        raise failure.TrainingRefused(f"the `model` channel must hold one .pt checkpoint (found: {found})")
    load_yolo(str(checkpoints[0]))  # a detect model or a broken file fails here, named
    return checkpoints[0]


def _workers(arguments: dict[str, Any], shm: int | None, devices: resources.Devices) -> int:
    requested = int(arguments.get("workers", hyperparameters.known_arguments()["workers"]))
    if not devices.count:
        return requested  # Ultralytics loads in the main process on the CPU anyway
    batch = arguments.get("batch", 16)
    fitted = resources.fitting_workers(
        requested,
        shm_bytes=shm,
        batch=int(batch) if isinstance(batch, int) and batch >= 1 else 16,
        imgsz=int(arguments.get("imgsz", 640)),
        gpus=devices.count,
    )
    if fitted < requested:
        size = f"{shm / 2**20:.0f} MB" if shm is not None else "unknown"
        log.warning(
            "/dev/shm is %s: %d DataLoader workers per GPU instead of %d (more shared memory, e.g. a larger "
            "instance, trains faster)",
            size,
            fitted,
            requested,
        )
    return fitted


def _write_summary(
    environment: TrainingEnvironment,
    arguments: dict[str, Any],
    applied: dict[str, Any],
    dataset: str,
    base: Path,
    resumed_from_epoch: int | None,
) -> None:
    environment.output_data_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "job": environment.job_name,
        "dataset": dataset,
        "base_model": base.name,
        "arguments": {k: v for k, v in arguments.items() if k not in ("data", "save_dir")},
        "finetune_defaults_applied": applied,
        "resumed_from_epoch": resumed_from_epoch,
    }
    (environment.output_data_dir / "training.json").write_text(json.dumps(summary, indent=2, default=str))
    run = environment.work_dir / "run"
    for name in ("results.csv", "args.yaml"):
        if (run / name).is_file():
            shutil.copyfile(run / name, environment.output_data_dir / name)


if __name__ == "__main__":
    sys.exit(main())
