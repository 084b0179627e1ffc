"""`pose-batch pipeline run --local` end to end on the embedded stack, on the CPU: the SDK-built definition
runs on the SageMaker stand-in (a real training job and a real evaluation processing job on the image's
entry point, the condition, then register or fail). Tiny on purpose (6 COCO photos trained for one epoch
at imgsz 160, 8 scored): the gate's outcome is set by --min-ap, not by how good the model is.

- a gate that passes (--min-ap 0) registers one PendingManualApproval package whose AP (metadata and
  metrics file) is the evaluation's;
- a gate that fails (--min-ap 0.99) registers nothing, ends Failed with the Fail step naming the AP and
  the bar, exit 1;
- a bad dataset is exit 2 naming the file and line, before any job starts."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch.cli import main
from batch.local.stack import EmbeddedStack
from batch.s3_uri import S3Uri
from tests.conftest import COCO_DIR, MODEL_PATH
from tests.training.datasets import coco_folder, five_keypoint_dataset

pytestmark = pytest.mark.slow
GROUP = "posebatch-pipeline-test"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSE_BACKEND", "torch")  # the evaluation's serving backend: no export, the test's time
        started = EmbeddedStack(tmp_path_factory.mktemp("stack"), bucket="posebatch-pipeline-test").start()
        yield started
        started.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return coco_folder(tmp_path_factory.mktemp("coco"), COCO_DIR, train=6, val=8)


def pipeline_run(stack: EmbeddedStack, *args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["pipeline", "run", "--local", "--home", str(stack.home), "--group", GROUP, *args])
        except SystemExit as exited:  # argparse's own usage errors (as from a shell: exit 2, the message)
            code = int(exited.code or 0)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else {}, err.getvalue()


def tiny(dataset: Path) -> list[str]:
    return ["--data", str(dataset), "--model", str(MODEL_PATH), "--epochs", "1", "--imgsz", "160",
            "--hyperparameter", "batch=4", "--wait", "--poll-seconds", "0.3"]  # fmt: skip


def test_a_gate_that_passes_registers_a_pending_package(stack: EmbeddedStack, dataset: Path) -> None:
    code, ran, err = pipeline_run(stack, *tiny(dataset), "--min-ap", "0")
    assert code == 0, err
    assert ran["status"] == "Succeeded", ran
    assert [(s["name"], s["status"]) for s in ran["steps"]] == [
        ("Train", "Succeeded"), ("Evaluate", "Succeeded"), ("CheckGate", "Succeeded"), ("Register", "Succeeded"),
    ]  # fmt: skip
    ap, baseline_ap = ran["metrics"]["ap"], ran["metrics"]["baseline_ap"]
    assert isinstance(ap, float) and isinstance(baseline_ap, float)
    assert baseline_ap > 0.1  # the pretrained model poses these photos: the evaluation really scored
    assert ran["approval"] == "PendingManualApproval"
    sagemaker, s3 = stack.client("sagemaker"), stack.client("s3")
    package = sagemaker.describe_model_package(ModelPackageName=ran["model_package"])
    assert package["ModelPackageGroupName"] == GROUP
    assert float(package["CustomerMetadataProperties"]["ap"]) == ap
    statistics = S3Uri.parse(package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])
    report = json.loads(s3.get_object(Bucket=statistics.bucket, Key=statistics.key)["Body"].read())
    assert report["pose_metrics"]["ap"]["value"] == ap and report["imgsz"] == 160
    (container,) = package["InferenceSpecification"]["Containers"]
    train_job = sagemaker.describe_training_job(TrainingJobName=container["ModelDataUrl"].split("/")[-3])
    assert train_job["ModelArtifacts"]["S3ModelArtifacts"] == container["ModelDataUrl"]
    assert train_job["HyperParameters"]["epochs"] == "1" and train_job["HyperParameters"]["batch"] == "4"


def test_a_gate_that_fails_registers_nothing(stack: EmbeddedStack, dataset: Path) -> None:
    sagemaker = stack.client("sagemaker")
    before = _packages(sagemaker)
    code, ran, err = pipeline_run(stack, *tiny(dataset), "--min-ap", "0.99")
    assert code == 1, err
    assert ran["status"] == "Failed" and ran["model_package"] is None and ran["approval"] is None
    steps = {s["name"]: s for s in ran["steps"]}
    assert set(steps) == {"Train", "Evaluate", "CheckGate", "GateFailed"}
    ap = ran["metrics"]["ap"]
    reason = steps["GateFailed"]["failure_reason"]
    assert f"AP {ap} " in reason and "MinAP 0.99" in reason and str(ran["metrics"]["baseline_ap"]) in reason
    assert ran["failure_reason"] == reason
    assert _packages(sagemaker) == before


def test_a_bad_dataset_is_exit_2_before_any_job(stack: EmbeddedStack, tmp_path: Path) -> None:
    data = five_keypoint_dataset(tmp_path / "stars", train=2, val=1, size=64)
    label = data / "labels" / "train" / "star_0.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.1\n")
    jobs = len(stack.client("sagemaker").list_training_jobs()["TrainingJobSummaries"])
    code, ran, err = pipeline_run(stack, "--data", str(data), "--model", str(MODEL_PATH), "--min-ap", "0.5")
    assert code == 2 and ran == {}
    assert "labels/train/star_0.txt:" in err and "Traceback" not in err
    assert len(stack.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == jobs
    code, _, err = pipeline_run(stack, "--data", str(data), "--min-ap", "1.5")
    assert code == 2 and "outside 0..1" in err


def _packages(sagemaker: Any) -> list[str]:
    try:
        found = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    except sagemaker.exceptions.ClientError:
        return []
    return sorted(p["ModelPackageArn"] for p in found)
