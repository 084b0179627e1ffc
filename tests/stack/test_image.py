"""`pose-batch image`: no engine on this machine gives a clear message and creates nothing; the ECR
repository (scan on push) and the login token work against moto's ECR."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from batch.cli import main
from batch.stack.image import ImageError, ensure_repository, find_engine, registry_login, repository_of


def test_no_engine_is_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageError, match=r"no container engine found on PATH \(looked for docker, podman, finch\)"):
        find_engine()


def test_an_engine_without_its_daemon_is_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A stand-in for a CLI whose daemon is down (this machine's docker CLI behaves the same way).
    podman = tmp_path / "podman"
    podman.write_text("#!/bin/sh\necho 'Cannot connect to the daemon' >&2\nexit 1\n")
    podman.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageError, match="found podman but none answers `info`"):
        find_engine()


@pytest.mark.parametrize("action", ["push", "build"])
def test_no_engine_is_a_user_error_before_touching_aws(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    # The CLI contract (README, "Exit codes"): exit 2, one message on stderr, nothing on stdout.
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["image", action]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("pose-batch image: error: no container engine found on PATH") and err.count("\n") == 1
    assert "buildspec.yml" in err
    assert aws("ecr").describe_repositories()["repositories"] == []


def test_a_failed_build_exits_1_with_its_reason_on_stderr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An engine that answers `info` but whose build fails: the command ran and failed (exit 1), not a
    # mistake of the user's.
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\n[ "$1" = info ] && exit 0\nexit 3\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["image", "build"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("pose-batch image: error: ") and "exited 3" in err


def test_repository_is_created_once_with_scan_on_push(aws: Any) -> None:
    ecr = aws("ecr")
    uri = ensure_repository(ecr, "posebatch")
    assert ensure_repository(ecr, "posebatch") == uri
    (repo,) = ecr.describe_repositories()["repositories"]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert uri.endswith(".amazonaws.com/posebatch")
    assert repository_of(f"{uri}:latest") == "posebatch"


def test_login_decodes_the_authorization_token(aws: Any) -> None:
    ecr = aws("ecr")
    registry = registry_login(ecr)
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert f"{registry.username}:{registry.password}" == base64.b64decode(token).decode()
    assert registry.username == "AWS" and "://" not in registry.endpoint
    assert os.environ["AWS_ENDPOINT_URL"]  # all of it against moto


@pytest.mark.parametrize(
    ("uri", "repository"),
    [
        ("123.dkr.ecr.eu-west-1.amazonaws.com/posebatch:latest", "posebatch"),
        ("123.dkr.ecr.eu-west-1.amazonaws.com/team/posebatch:v2", "team/posebatch"),
        ("123.dkr.ecr.eu-west-1.amazonaws.com/posebatch@sha256:abc", "posebatch"),
        ("localhost:5000/posebatch:1", "posebatch"),
    ],
)
def test_repository_of(uri: str, repository: str) -> None:
    assert repository_of(uri) == repository
