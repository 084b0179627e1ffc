"""One embedded local stack for the registry and real-time tests (moto, the SageMaker stand-in, the real
container on CPU), set up as `pose-batch local up` sets it up: the pretrained weights uploaded as the stack's
model, the registry's group and approval handler, and (here) a real-time endpoint deployed with the CLI.
The CLI runs in this process (`batch.cli.main`), against the stack's state file, exactly as from a shell."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch.cli import main
from batch.local.sagemaker.async_deployment import LOCAL_IMAGE
from batch.local.stack import EmbeddedStack
from batch.local.state import write_state
from batch.model_package import package_checkpoint
from batch.registry.packages import ModelPackage, register_model_package

BUCKET = "posebatch-registry-test"
ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class RegistryStack:
    stack: EmbeddedStack
    work: Path
    weights: Path

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def cli(self, *args: str) -> Ran:
        """`pose-batch ARGS --home <the stack's>` in this process: exit code, stdout, stderr."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, "--home", str(self.stack.home)])
        return Ran(code, out.getvalue(), err.getvalue())

    def register(self, checkpoint_name: str, *, group: str, ap: float = 0.449) -> ModelPackage:
        """What the training pipeline registers: the weights (under `checkpoint_name`, the name records
        will show) packed as model.tar.gz, their metrics file, pending manual approval."""
        folder = self.work / "packages" / group / checkpoint_name
        folder.mkdir(parents=True)
        checkpoint = folder / checkpoint_name
        shutil.copyfile(self.weights, checkpoint)
        archive = package_checkpoint(checkpoint, folder / "model.tar.gz")
        s3 = self.client("s3")
        key = f"models/{group}/{checkpoint.stem}"
        s3.upload_file(str(archive), BUCKET, f"{key}/model.tar.gz")
        metrics = {"keypoint": {"ap": {"value": ap}}}
        s3.put_object(Bucket=BUCKET, Key=f"{key}/evaluation.json", Body=json.dumps(metrics).encode())
        return register_model_package(
            self.client("sagemaker"),
            image=LOCAL_IMAGE,
            model_data_url=f"s3://{BUCKET}/{key}/model.tar.gz",
            metrics_uri=f"s3://{BUCKET}/{key}/evaluation.json",
            dataset="s3://posebatch-registry-test/datasets/coco-val-mini/",
            base_model="yolo11n-pose.pt",
            ap=ap,
            group=group,
        )


@pytest.fixture(scope="session")
def registry_stack(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RegistryStack]:
    work = tmp_path_factory.mktemp("registry")
    with EmbeddedStack(work / "state", bucket=BUCKET) as stack:
        archive = package_checkpoint(model_path, work / "base" / "model.tar.gz")
        stack.client("s3").upload_file(str(archive), BUCKET, "models/base/model.tar.gz")
        write_state(
            stack.home, model={"model_data": f"s3://{BUCKET}/models/base/model.tar.gz", "image_uri": LOCAL_IMAGE}
        )
        yield RegistryStack(stack, work, model_path)


@pytest.fixture(scope="session")
def realtime_endpoint(registry_stack: RegistryStack) -> dict[str, Any]:
    """`pose-batch deploy --realtime --local` with no model named: the stack's default model, so the
    endpoint follows the group's approvals."""
    ran = registry_stack.cli("deploy", "--realtime", "--local")
    assert ran.code == 0, ran.err
    deployed: dict[str, Any] = ran.json()
    return deployed
