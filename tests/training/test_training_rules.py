"""The training rules as tables: hyperparameters (strings in, Ultralytics' types out), the fine-tuning
defaults' scaling, DataLoader workers that fit /dev/shm, and the metrics line against the very
MetricDefinitions regexes a job is created with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from batch.settings import JobSettings
from batch.training import finetune, hyperparameters, metrics, resources
from batch.training.environment import TrainingEnvironment


@pytest.mark.parametrize(
    ("raw", "typed"),
    [
        ({"epochs": "3", "imgsz": "320"}, {"epochs": 3, "imgsz": 320}),
        ({"lr0": "0.005", "mosaic": "0"}, {"lr0": 0.005, "mosaic": 0}),
        ({"optimizer": "AdamW", "cos_lr": "true"}, {"optimizer": "AdamW", "cos_lr": True}),
        ({"freeze": "[0, 1, 2]"}, {"freeze": [0, 1, 2]}),
        ({"fraction": "0.5", "amp": "False"}, {"fraction": 0.5, "amp": False}),
    ],
)
def test_hyperparameters_arrive_as_strings_and_leave_typed(raw: dict[str, str], typed: dict[str, Any]) -> None:
    assert hyperparameters.parse(raw) == typed
    assert hyperparameters.parse(hyperparameters.as_strings(typed)) == typed


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"lr": "0.1"}, "lr: not an Ultralytics train argument (did you mean lrf, lr0?)"),
        ({"epochs": "three"}, "epochs=three:"),
        ({"fliplr": "1.5"}, "fliplr=1.5:"),
        ({"data": "x.yaml"}, "data: not a hyperparameter here: the dataset is the `dataset` channel"),
        ({"resume": "True"}, "resume: not a hyperparameter here"),
    ],
)
def test_bad_hyperparameters_are_named(raw: dict[str, str], says: str) -> None:
    with pytest.raises(hyperparameters.HyperparameterError, match=re.escape(says)):
        hyperparameters.parse(raw)


@pytest.mark.parametrize(
    ("images", "epochs", "batch", "lr0", "warmup"),
    [
        (30, 1, 16, 0.002, 0.1),  # the tests' run: a single optimizer step
        (60, 10, 16, 0.002, 1.0),  # the experiment, ten epochs
        (500, 30, 16, 0.002828, 3.0),  # 240 steps: between
        (1000, 50, 16, 0.005164, 3.0),  # 800 steps
        (5000, 100, 16, 0.01, 3.0),  # 7900 steps: Ultralytics' own rate
        (5000, 100, 128, 0.01, 3.0),  # batches above nbs count as themselves
    ],
)
def test_finetune_defaults_scale_with_the_run(images: int, epochs: int, batch: int, lr0: float, warmup: float) -> None:
    chosen = finetune.defaults(train_images=images, epochs=epochs, batch=batch)
    assert chosen["optimizer"] == "SGD"
    assert chosen["lr0"] == pytest.approx(lr0, abs=1e-6)
    assert chosen["warmup_epochs"] == pytest.approx(warmup)
    assert chosen["warmup_bias_lr"] == 0.0


def test_a_users_argument_beats_the_default() -> None:
    arguments, applied = finetune.with_defaults({"optimizer": "auto", "epochs": 2}, train_images=50)
    assert arguments["optimizer"] == "auto"
    assert "optimizer" not in applied and applied["lr0"] == 0.002


MB = 2**20


@pytest.mark.parametrize(
    ("requested", "shm", "batch", "imgsz", "gpus", "workers"),
    [
        (8, 64 * MB, 16, 640, 1, 0),  # Docker's default /dev/shm: not one worker's prefetch fits
        (8, 1024 * MB, 16, 640, 1, 8),  # 1 GiB: plenty
        (8, 256 * MB, 16, 640, 1, 3),  # 0.5 x 256 MB / (2 x 16 x 3 x 640^2 B)
        (8, 256 * MB, 32, 640, 4, 1),  # DDP: per-GPU batch 8, four ranks share it
        (8, None, 16, 640, 1, 8),  # nothing to measure: as asked
        (2, 64 * MB, 16, 160, 1, 2),  # small images fit
    ],
)
def test_workers_fit_the_shared_memory(
    requested: int, shm: int | None, batch: int, imgsz: int, gpus: int, workers: int
) -> None:
    assert resources.fitting_workers(requested, shm_bytes=shm, batch=batch, imgsz=imgsz, gpus=gpus) == workers


def test_the_shared_memory_of_this_machine_is_measured() -> None:
    assert (resources.shared_memory_bytes(Path("/dev/shm")) or 0) > 0
    assert resources.shared_memory_bytes(Path("/no/such/place")) is None


def test_every_metric_of_a_line_is_caught_by_its_definition() -> None:
    line = metrics.format_line(
        epoch=3,
        epochs=10,
        losses={
            "train/box_loss": 1.25,
            "train/pose_loss": 3.5,
            "train/kobj_loss": 0.25,
            "train/cls_loss": 0.5,
            "train/dfl_loss": 1.0,
        },
        validation={
            "metrics/mAP50-95(P)": 0.512,
            "metrics/mAP50(P)": 0.8,
            "metrics/mAP50-95(B)": 0.6,
            "metrics/mAP50(B)": 0.9,
        },
        images_per_s=12.5,
    )
    caught = {}
    for definition in metrics.metric_definitions():
        found = re.search(definition["Regex"], f"2026-01-01 algo-1 {line}")
        assert found is not None, definition
        caught[definition["Name"]] = float(found.group(1))
    assert caught == {
        "epoch": 3, "train_box_loss": 1.25, "train_pose_loss": 3.5, "train_kobj_loss": 0.25, "train_cls_loss": 0.5,
        "train_dfl_loss": 1.0, "pose_map50_95": 0.512, "pose_map50": 0.8, "box_map50_95": 0.6, "box_map50": 0.9,
        "images_per_s": 12.5,
    }  # fmt: skip
    assert metrics.parse_line(line)["pose_map50_95"] == 0.512
    assert not any(re.search(d["Regex"], "epoch=3 pose_map50_95=0.5") for d in metrics.metric_definitions())


def test_the_environment_reads_the_opt_ml_layout(tmp_path: Path) -> None:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text('{"epochs": "3", "imgsz": "320"}')
    (config / "resourceconfig.json").write_text('{"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}')
    (config / "inputdataconfig.json").write_text('{"dataset": {}, "model": {}}')
    env = TrainingEnvironment.load(JobSettings.from_env({"POSE_ML_ROOT": str(tmp_path), "TRAINING_JOB_NAME": "j-1"}))
    assert env.hyperparameters == {"epochs": "3", "imgsz": "320"}
    assert env.hosts == ("algo-1", "algo-2") and env.job_name == "j-1"
    assert env.channels == {"dataset": tmp_path / "input/data/dataset", "model": tmp_path / "input/data/model"}
    assert env.failure_file == tmp_path / "output" / "failure"
    assert JobSettings.from_env({"POSE_ML_ROOT": str(tmp_path)}).ml_path("/opt/ml/processing/model") == (
        tmp_path / "processing" / "model"
    )


def test_the_trainer_drops_the_mlflow_tracker_the_sdk_brings() -> None:
    # mlflow comes with the SageMaker SDK (the `pipeline` extra); Ultralytics would start runs with it.
    from ultralytics.models.yolo.pose import PoseTrainer
    from ultralytics.utils import callbacks

    from batch.training.trainer import drop_tracking_integrations

    trainer = PoseTrainer.__new__(PoseTrainer)
    trainer.callbacks = callbacks.get_default_callbacks()
    callbacks.add_integration_callbacks(trainer)  # Ultralytics' default settings: mlflow on when importable

    def tracked() -> int:
        return sum(
            f.__module__ == "ultralytics.utils.callbacks.mlflow" for fs in trainer.callbacks.values() for f in fs
        )

    assert tracked() > 0
    drop_tracking_integrations(trainer)
    assert tracked() == 0 and trainer.callbacks["on_fit_epoch_end"]
