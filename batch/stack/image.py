"""The serving image: build it with whichever container engine is present (docker, podman or finch,
first found), create the ECR repository if needed (scan on push), log in with an ECR authorization
token (boto3, no AWS CLI needed), tag and push.

Without a local engine (SageMaker Studio, CloudShell), build in CodeBuild with the repository's
`buildspec.yml` instead: see docs/aws-deploy.md."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ENGINES = ("docker", "podman", "finch")
DEFAULT_REPOSITORY = "posebatch"
DOCKERFILE = "container/Dockerfile"


class ImageError(RuntimeError):
    """An image step that failed (the build, the login, the push); the message says which and why."""


class ImageSetupError(ImageError):
    """This machine or checkout cannot build the image (no engine, an engine that does not answer, no
    container/Dockerfile): nothing was done, and the message says what to do instead."""


@dataclass(frozen=True)
class Registry:
    endpoint: str  # e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com (no scheme)
    username: str
    password: str


def find_engine(candidates: Sequence[str] = ENGINES) -> str:
    """The path of the first engine on PATH whose daemon/VM answers; a clear error otherwise."""
    found = [(name, shutil.which(name)) for name in candidates]
    present = [(name, path) for name, path in found if path]
    if not present:
        raise ImageSetupError(
            f"no container engine found on PATH (looked for {', '.join(candidates)}). Install one, or build "
            "the image in AWS CodeBuild with buildspec.yml (see docs/aws-deploy.md, 'Without local Docker')."
        )
    for _name, path in present:
        assert path is not None
        probe = subprocess.run([path, "info"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return path
    names = ", ".join(name for name, _ in present)
    raise ImageSetupError(
        f"found {names} but none answers `info` (is the daemon or VM running?). Start it, or build in "
        "AWS CodeBuild with buildspec.yml (see docs/aws-deploy.md, 'Without local Docker')."
    )


def ensure_repository(ecr: Any, name: str) -> str:
    """The repository URI, creating it (scan on push, immutable tags off: `latest` moves) if needed."""
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
            raise
        repo = ecr.create_repository(
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={"encryptionType": "AES256"},
            tags=[{"Key": "project", "Value": "posebatch"}],
        )["repository"]
    return str(repo["repositoryUri"])


def registry_login(ecr: Any) -> Registry:
    """Credentials from `GetAuthorizationToken`: base64 `user:password`, valid 12 hours."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    endpoint = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    return Registry(endpoint=endpoint, username=user, password=password)


def build(engine: str, tag: str, context: Path, platform: str = "linux/amd64") -> None:
    if not (context / DOCKERFILE).is_file():
        raise ImageSetupError(f"{context / DOCKERFILE} not found: build from a PoseBatch checkout (pip install -e .)")
    _run([engine, "build", "--platform", platform, "-f", str(context / DOCKERFILE), "-t", tag, str(context)])


def push(engine: str, local_tag: str, remote: str, registry: Registry) -> None:
    # The password goes through stdin, never on the command line.
    login = subprocess.run(
        [engine, "login", "--username", registry.username, "--password-stdin", registry.endpoint],
        input=registry.password,
        text=True,
        check=False,
        capture_output=True,
    )
    if login.returncode != 0:
        raise ImageError(f"login to {registry.endpoint} failed: {login.stderr.strip()[:500]}")
    _run([engine, "tag", local_tag, remote])
    _run([engine, "push", remote])


def _run(command: list[str]) -> None:
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise ImageError(f"`{' '.join(command[:3])} ...` exited {completed.returncode}")


def image_uri(repository_uri: str, tag: str) -> str:
    return f"{repository_uri}:{tag}"


def repository_of(uri: str) -> str:
    """`123.dkr.ecr.r.amazonaws.com/team/posebatch:tag` -> `team/posebatch` (scopes the stack's ECR access)."""
    path = uri.split("/", 1)[1] if "/" in uri else uri
    path = path.split("@", 1)[0]
    return path.rsplit(":", 1)[0] if ":" in path else path
