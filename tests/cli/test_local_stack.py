"""`pose-batch local up` in its own process, and `--local` commands from another folder against it, as a
user runs them in two terminals: the state is found without --home, Ctrl-C on `transform --wait` leaves the
job running and `--attach` follows it again, a container that cannot start keeps its reason, and closing
the terminal (SIGHUP) stops the stack cleanly. One stack and two short jobs keep this module quick."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch.aws import ClientFactory
from batch.model_package import package_checkpoint
from batch.polling import poll
from tests.cli.commands import environment, pose_batch, start
from tests.transform.jobs import wait_until_job_ends

BUCKET = "posebatch-cli"


@dataclass
class LocalUp:
    process: subprocess.Popen[str]
    home: Path
    env: dict[str, str]
    elsewhere: Path  # another working directory than the one `local up` started in
    stdout: Path

    def client(self, service: str) -> Any:
        state = json.loads((self.home / "local-stack.json").read_text())
        return ClientFactory(state["environment"])(service)

    def run(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return pose_batch(*args, cwd=self.elsewhere, env=self.env, timeout_s=timeout_s)


def _ready(up: LocalUp) -> bool | None:
    if up.process.poll() is not None:
        raise AssertionError(f"local up exited with {up.process.returncode}: {up.stdout.read_text()}")
    return True if "Ctrl-C to stop" in up.stdout.read_text() else None


@pytest.fixture(scope="module")
def local_up(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[LocalUp]:
    root = tmp_path_factory.mktemp("local-up")
    home, started_in, elsewhere = root / "state", root / "terminal-1", root / "terminal-2"
    started_in.mkdir()
    elsewhere.mkdir()
    env = environment(home)
    process = start("local", "up", "--no-async", "--model", str(model_path), "--bucket", BUCKET, cwd=started_in,
                    env=env, stdout_path=root / "up.out", stderr_path=root / "up.err")  # fmt: skip
    up = LocalUp(process, home, env, elsewhere, root / "up.out")
    try:
        poll(lambda: _ready(up), timeout_s=240, interval_s=0.5, on_timeout=lambda: "local up never got ready")
        s3 = up.client("s3")
        coco = sorted((model_path.parents[1] / "data" / "coco-val-mini" / "images").glob("*.jpg"))
        for name, image in (("a/x.jpg", coco[0]), ("b/x.jpg", coco[1])):  # same file name, two folders
            s3.upload_file(str(image), BUCKET, f"input/{name}")
        yield up
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_on_transform_wait_leaves_the_job_running_and_attach_follows_it(local_up: LocalUp) -> None:
    out, err = local_up.home.parent / "wait.out", local_up.home.parent / "wait.err"
    waiting = start("transform", "--local", f"s3://{BUCKET}/input/", "--output", f"s3://{BUCKET}/output/ok/",
                    "--wait", cwd=local_up.elsewhere, env=local_up.env, stdout_path=out, stderr_path=err)  # fmt: skip
    try:
        launched = poll(
            lambda: re.search(r"launched transform job (\S+)", out.read_text()),
            timeout_s=120,
            interval_s=0.2,
            on_timeout=lambda: f"no launch: {out.read_text()} {err.read_text()}",
        )
        waiting.send_signal(signal.SIGINT)
        code = waiting.wait(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    job_name = launched.group(1)
    said = err.read_text()
    assert code == 130, said
    assert f"{job_name} keeps running" in said and f"pose-batch transform --attach {job_name} --local" in said
    assert "Traceback" not in said + out.read_text()

    status = local_up.run("status", job_name, "--local")
    assert status.returncode in (0, 1) and f"job:      {job_name}" in status.stdout, status.stderr

    attached = local_up.run("transform", "--attach", job_name, "--local")
    assert attached.returncode == 0, attached.stdout + attached.stderr
    assert "2 total, 2 done, 0 failed" in attached.stdout
    assert "report:" in attached.stdout
    keys = {o["Key"] for o in local_up.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="output/ok/")["Contents"]}
    assert {"output/ok/keypoints/a/x.jpg.json", "output/ok/keypoints/b/x.jpg.json", "output/ok/_REPORT.html"} <= keys


def test_a_container_that_cannot_start_keeps_its_reason(local_up: LocalUp, detect_checkpoint: Path) -> None:
    archive = package_checkpoint(detect_checkpoint, local_up.home.parent / "det" / "model.tar.gz")
    local_up.client("s3").upload_file(str(archive), BUCKET, "models/det/model.tar.gz")

    launched = local_up.run("transform", "--local", f"s3://{BUCKET}/input/", "--output", f"s3://{BUCKET}/output/det/",
                            "--model-data", f"s3://{BUCKET}/models/det/model.tar.gz")  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    job_name = re.search(r"launched transform job (\S+)", launched.stdout).group(1)  # type: ignore[union-attr]
    assert f"follow it with: pose-batch transform --attach {job_name} --local" in launched.stdout
    assert "aws sagemaker" not in launched.stdout  # no command that would go to real AWS

    wait_until_job_ends(local_up.client("sagemaker"), job_name)
    attached = local_up.run("transform", "--attach", job_name, "--local", "--no-report")
    reason = "is a detect model, not a pose model"
    assert attached.returncode == 1 and reason in attached.stdout, attached.stdout + attached.stderr
    s3 = local_up.client("s3")
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="output/det/_SUMMARY.json")["Body"].read())
    assert reason in summary["failure_reason"]
    record = json.loads(s3.get_object(Bucket=BUCKET, Key="output/det/keypoints/a/x.jpg.json")["Body"].read())
    assert reason in record["error"]["message"]


def test_a_missing_bucket_is_said_plainly(local_up: LocalUp) -> None:
    done = local_up.run("transform", "--local", "s3://no-such-bucket/in/", "--output", "s3://no-such-bucket/out/")
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_closing_the_terminal_stops_local_up_cleanly(local_up: LocalUp) -> None:
    """Runs last in this module: SIGHUP (the terminal closed) stops moto, the stand-ins and removes the state."""
    local_up.process.send_signal(signal.SIGHUP)
    assert local_up.process.wait(timeout=120) == 0
    assert "stopping" in local_up.stdout.read_text()
    assert not (local_up.home / "local-stack.json").exists()
    after = local_up.run("status", "any-job", "--local")
    assert after.returncode == 2 and "no local stack is running" in after.stderr
