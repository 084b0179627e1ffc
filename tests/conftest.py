"""Fixtures shared by the whole suite: the real weights and COCO data from ../shared, and real
servers (the container's own entry point on a loopback port)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
MODEL_PATH = SHARED / "models" / "yolo11n-pose.pt"
COCO_DIR = SHARED / "data" / "coco-val-mini"

# Every process the tests start (servers, stand-ins) inherits these: no network, one ONNX export per run.
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("POSE_ONNX_CACHE_DIR", str(REPO_ROOT / ".posebatch" / "onnx-cache"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the two cores (scripts/test): a core's worth of threads each, for the worker and every
    # container it starts. With each process taking all cores, four or more inference and compile thread pools
    # oversubscribed them, and model loads stalled past the 240 s start-up limit (seen in a CI-like run).
    os.environ.setdefault("POSE_CPU_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background (`scripts/test &`, nohup) inherits SIGINT ignored, and so would every
    # command it starts: the Ctrl-C tests would then test nothing. Handled here, the commands get the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not MODEL_PATH.is_file():
        raise pytest.UsageError(f"the test weights are missing: {MODEL_PATH} (../shared must sit beside the repo)")


@pytest.fixture(scope="session")
def model_path() -> Path:
    return MODEL_PATH


@pytest.fixture(scope="session")
def sample_images() -> dict[str, bytes]:
    """The images that ship inside ultralytics (bus.jpg, zidane.jpg)."""
    from ultralytics.utils import ASSETS

    return {name: (Path(ASSETS) / name).read_bytes() for name in ("bus.jpg", "zidane.jpg")}


ServerFactory = Callable[..., str]


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start the real container entry point (`container/serve serve`) with extra environment; returns its URL."""
    from batch.local.container import ServingContainer

    started: list[ServingContainer] = []

    def start(**environment: str) -> str:
        env = {"POSE_MODEL": str(MODEL_PATH), **environment}
        model_dir = tmp_path_factory.mktemp("model")
        container = ServingContainer(model_dir=model_dir, environment=env, aws_environment={})
        started.append(container.start(startup_timeout_s=180))
        return container.url

    yield start
    for container in started:
        container.stop()


@pytest.fixture(scope="session")
def server_url(server_factory: ServerFactory) -> str:
    """The default server: CPU, default backend (ONNX Runtime), default thresholds."""
    return server_factory()
