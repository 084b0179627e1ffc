"""The mistakes users make, run through the real console script: one clear message that says what to do,
the documented exit code (2: usage or user error), and never a Python traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.commands import environment, pose_batch

USAGE = 2

# (id, arguments, exit code, what stderr must say). `{x}` are filled in from the `places` fixture.
MISTAKES = [
    ("predict-missing-model", ["predict", "{images}", "--model", "/nope/model.pt"], USAGE, "does not exist"),
    ("predict-detect-model", ["predict", "{images}", "--model", "{det}"], USAGE, "is a detect model, not a pose model"),
    ("predict-empty-folder", ["predict", "{empty}"], USAGE, "no images or videos found in"),
    ("predict-no-such-path", ["predict", "{tmp}/nope.jpg"], USAGE, "no such file or folder"),
    ("predict-no-arguments", ["predict"], USAGE, "the following arguments are required"),
    ("predict-out-is-input", ["predict", "{images}", "--out", "{images}"], USAGE, "is inside the input folder"),
    ("predict-input-in-out", ["predict", "{images}", "--out", "{tmp}"], USAGE, "is inside --out"),
    ("submit-not-s3", ["submit", "bucket/x/"], USAGE, "not an S3 URI"),
    ("submit-local-no-stack", ["submit", "--local", "s3://b/in/"], USAGE, "start one in another terminal"),
    ("transform-local-no-stack", ["transform", "--local", "s3://b/in/", "--output", "s3://b/out/"], USAGE,
     "no local stack is running"),
    ("transform-stale-state", ["transform", "--local", "--home", "{stale}", "s3://b/in/", "--output", "s3://b/o/"],
     USAGE, "has exited without cleaning up"),
    ("status-stale-state", ["status", "job-1", "--local", "--home", "{stale}"], USAGE, "pose-batch local up"),
    ("dlq-local-no-stack", ["dlq", "show", "--local"], USAGE, "start one in another terminal"),
    ("transform-no-output", ["transform", "s3://b/in/"], USAGE, "--output"),
    ("transform-no-image", ["transform", "s3://b/in/", "--output", "s3://b/out/"], USAGE, "missing --image-uri"),
    ("deploy-serverless-alone", ["deploy", "--serverless"], USAGE, "add --realtime"),
    ("invoke-no-such-file", ["invoke", "posebatch-realtime", "{tmp}/nope.jpg"], USAGE, "no such file or folder"),
    ("models-local-no-stack", ["models", "list", "--local"], USAGE, "start one in another terminal"),
    ("local-up-detect-model", ["local", "up", "--model", "{det}"], USAGE, "is a detect model, not a pose model"),
    ("local-up-missing-model", ["local", "up", "--model", "/nope/x.pt"], USAGE, "does not exist"),
    ("package-missing-checkpoint", ["package-model", "{tmp}/nope.pt"], USAGE, "does not exist"),
    ("report-no-folder", ["report", "{tmp}/no-such-output"], USAGE, "not a folder"),
    ("submit-bad-fps", ["submit", "s3://b/in/", "--fps", "0"], USAGE, "fps='0.0' must be above 0"),
    ("submit-fps-and-stride", ["submit", "s3://b/in/", "--fps", "2", "--frame-stride", "3"], USAGE,
     "not allowed with argument"),
    ("transform-flag-and-env", ["transform", "s3://b/in/", "--output", "s3://b/o/", "--conf", "0.4", "--env",
     "POSE_CONF=0.5"], USAGE, "POSE_CONF is given twice"),
    ("transform-bad-imgsz", ["transform", "s3://b/in/", "--output", "s3://b/o/", "--imgsz", "100"], USAGE,
     "multiple of 32"),
    ("unknown-command", ["transfrom"], USAGE, "invalid choice"),
    ("bench-bad-backend", ["bench", "--backends", "auto,gpu"], USAGE, "'gpu': the backend must be one of"),
    ("bench-not-a-setting", ["bench", "--backends", "auto:POSE_NOPE=1"], USAGE, "is not NAME=VALUE"),
    ("bench-bad-value", ["bench", "--backends", "auto:POSE_ANNOTATED_MAX_SIDE=big"], USAGE, "value is not valid"),
]  # fmt: skip


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory, detect_checkpoint: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mistakes")
    (root / "images").mkdir()
    (root / "images" / "photo.jpg").write_bytes(b"\xff\xd8 never decoded: the model fails first")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("not an image")
    stale = root / "stale"
    stale.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs: a stack killed without clean-up
    state = {"environment": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "bucket": "b", "pid": gone.pid}
    (stale / "local-stack.json").write_text(json.dumps(state))
    return {"images": root / "images", "empty": root / "empty", "stale": stale, "det": detect_checkpoint, "tmp": root}


@pytest.mark.parametrize(("arguments", "code", "message"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_mistake_gets_one_clear_message(
    places: dict[str, Path], tmp_path: Path, arguments: list[str], code: int, message: str
) -> None:
    args = [a.format(**places) for a in arguments]
    done = pose_batch(*args, cwd=tmp_path, env=environment(tmp_path / "no-stack-here"))

    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_verbose_shows_the_traceback(places: dict[str, Path], tmp_path: Path) -> None:
    done = pose_batch("--verbose", "submit", "bucket/x/", cwd=tmp_path, env=environment(tmp_path))
    assert done.returncode == USAGE and "Traceback" in done.stderr and "not an S3 URI" in done.stderr


def test_schema_prints_valid_json(tmp_path: Path) -> None:
    done = pose_batch("schema", cwd=tmp_path, env=environment(tmp_path))
    assert done.returncode == 0, done.stderr
    schemas = json.loads(done.stdout)
    assert {"pose_result.schema.json", "error_record.schema.json"} <= set(schemas)
    assert {"source", "schema_version"} <= set(schemas["pose_result.schema.json"]["properties"])


def test_help_is_written_for_users(tmp_path: Path) -> None:
    top = pose_batch("--help", cwd=tmp_path, env=environment(tmp_path))
    assert top.returncode == 0
    assert "batch/commands" not in top.stdout and "exit codes" in top.stdout
    bench = pose_batch("bench", "--help", cwd=tmp_path, env=environment(tmp_path))
    assert bench.returncode == 0 and "--count" in bench.stdout and "--concurrency" in bench.stdout


def test_every_command_has_a_description() -> None:
    import argparse

    from batch.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    undescribed = [
        name
        for name, parser in subparsers.choices.items()
        if name != "bench" and not (parser.description or "").strip()  # bench's help is the benchmark's own
    ]
    assert undescribed == []


def test_a_bad_finalize_concurrency_stops_local_up_before_anything_starts(tmp_path: Path) -> None:
    env = environment(tmp_path / "home", POSEBATCH_FINALIZE_CONCURRENCY="0")
    done = pose_batch("local", "up", cwd=tmp_path, env=env)
    assert done.returncode == USAGE
    assert "POSEBATCH_FINALIZE_CONCURRENCY must be a whole number, at least 1" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
