"""`/ping` answers at once while the model loads (503), then 200; a failed load is reported, not hung."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from batch.inference.engine import PoseEngine
from batch.local.ports import free_port
from batch.server.app import create_app
from batch.settings import Settings
from tests.conftest import MODEL_PATH


class ServerThread:
    def __init__(self, loader: object) -> None:
        settings = Settings.from_env({"POSE_MODEL": str(MODEL_PATH), "POSE_BACKEND": "torch"})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, load_engine=loader)  # type: ignore[arg-type]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture
def release_loading() -> Iterator[threading.Event]:
    gate = threading.Event()
    yield gate
    gate.set()


def test_ping_is_fast_and_503_while_loading(release_loading: threading.Event) -> None:
    def slow_load(settings: Settings) -> PoseEngine:
        release_loading.wait(60)  # the model "takes" as long as the test wants
        return PoseEngine.load(settings)

    with ServerThread(slow_load) as server:
        for _ in range(3):
            started = time.monotonic()
            response = httpx.get(f"{server.url}/ping", timeout=2)
            assert time.monotonic() - started < 2.0
            assert response.status_code == 503
        busy = httpx.post(f"{server.url}/invocations", content=b"x", headers={"Content-Type": "image/jpeg"})
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "model_not_ready"
        release_loading.set()
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/ping", timeout=2).status_code != 200:
            assert time.monotonic() < deadline, "model never became ready"
            time.sleep(0.05)


def test_failed_load_is_reported_by_ping() -> None:
    def broken_load(settings: Settings) -> PoseEngine:
        raise RuntimeError("weights are corrupt")

    with ServerThread(broken_load) as server:
        deadline = time.monotonic() + 10
        while (response := httpx.get(f"{server.url}/ping", timeout=2)).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert response.status_code == 500
        assert "weights are corrupt" in response.json()["error"]
