"""The serving install (`pip install -c requirements/lock.txt .`, no extras; the image adds only the
`train` extra, for its training and evaluation steps) is enough to run `container/serve`: it answers /ping
and one invocation.

Cheaply, without a second environment: the server runs from this venv, but a `sitecustomize` import
hook refuses every module whose distributions are not in the base dependency closure of
pyproject.toml (computed from the installed metadata). So moto, the SageMaker SDK, pytest,
cfn-lint, pycocotools and anything else only an extra (or nothing) brings raise ImportError in the
server, exactly as they would in the image. It proves the serving path imports nothing outside the
base install; it does not prove the lock file resolves on the image's Python (the image build does)."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import httpx
import pytest
import tomllib
from packaging.requirements import Requirement

from batch.local.container import ServingContainer

REPO = Path(__file__).resolve().parents[2]
# Installer tooling present in any venv, the project itself.
ALWAYS = {"pip", "posebatch"}
# A blocked module behaves as an absent one: importing it raises ModuleNotFoundError, and probing for it
# with importlib.util.find_spec answers None (torch._dynamo probes for tqdm that way when torchvision loads).
HOOK = """
import importlib.abc, importlib.util, os, sys
BLOCKED = frozenset(os.environ["POSEBATCH_BLOCKED_MODULES"].split(","))
def _blocked(name):
    if name.partition(".")[0] not in BLOCKED:
        return False
    with open(os.environ["POSEBATCH_BLOCKED_LOG"], "a") as log:
        log.write(name + "\\n")
    return True
class _NotInServingInstall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            raise ModuleNotFoundError(f"{name} is not part of the serving install", name=name)
        return None
_find_spec = importlib.util.find_spec
def _probe(name, package=None):
    return None if _blocked(name) else _find_spec(name, package)
importlib.util.find_spec = _probe
sys.meta_path.insert(0, _NotInServingInstall())
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def base_closure() -> set[str]:
    """Distributions `pip install .` brings: the base dependencies and theirs, markers evaluated."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    seen: set[str] = set()
    pending = [(Requirement(r), "") for r in project["dependencies"]]
    while pending:
        req, extra = pending.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonical(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(req.name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            for wanted in ("", *req.extras):
                pending.append((Requirement(text), wanted))
    return seen


def blocked_modules() -> set[str]:
    allowed = base_closure() | ALWAYS
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonical(d) in allowed for d in dists) and module.isidentifier()
    }


def test_blocked_set_is_what_only_extras_bring() -> None:
    blocked = blocked_modules()
    assert {"moto", "pytest", "cfnlint", "pycocotools"} <= blocked
    assert not {"ultralytics", "torch", "fastapi", "uvicorn", "boto3", "pydantic", "onnxruntime"} & blocked


@pytest.mark.slow
def test_serving_install_answers_ping_and_an_invocation(
    tmp_path: Path, model_path: Path, sample_images: dict[str, bytes]
) -> None:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    log = tmp_path / "blocked.log"
    environment = {
        "POSE_MODEL": str(model_path),
        "PYTHONPATH": f"{hook_dir}:{REPO}",
        "POSEBATCH_BLOCKED_MODULES": ",".join(sorted(blocked_modules())),
        "POSEBATCH_BLOCKED_LOG": str(log),
    }
    container = ServingContainer(model_dir=tmp_path / "model", environment=environment, aws_environment={})
    (tmp_path / "model").mkdir()
    container.start(startup_timeout_s=240)
    try:
        assert httpx.get(f"{container.url}/ping", timeout=10).status_code == 200
        response = httpx.post(
            f"{container.url}/invocations",
            content=sample_images["bus.jpg"],
            headers={"Content-Type": "image/jpeg"},
            timeout=120,
        )
        assert response.status_code == 200, response.text[:500]
        assert len(json.loads(response.content)["persons"]) >= 3  # people in front of the bus
    finally:
        container.stop()
    # Proof the hook was active (it loaded) and what the server tried and did without.
    attempted = log.read_text().split() if log.exists() else []
    assert not [name for name in attempted if name.partition(".")[0] in {"moto", "sagemaker", "pytest"}]
