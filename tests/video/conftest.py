"""One pose engine for the video tests, on an event loop of its own (the batcher lives on one loop),
and the clips they share, made once per session."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from batch.inference.engine import PoseEngine
from batch.settings import Settings
from tests.conftest import MODEL_PATH
from tests.video.clips import Scene, write_clip

T = TypeVar("T")

# Two people walking right, 10 frames a second: the clip most tests pose.
WALK = Scene(width=480, height=240, persons=2, person_height=180, step=4)
WALK_FRAMES = 16


class EngineRunner:
    """The engine and the loop it runs on; `run(coroutine)` from any test."""

    def __init__(self, engine: PoseEngine) -> None:
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="video-tests-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def close(self) -> None:
        self.run(self.engine.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def video_engine() -> Iterator[EngineRunner]:
    runner = EngineRunner(PoseEngine.load(Settings.from_env({"POSE_MODEL": str(MODEL_PATH)})))
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def walk_clip(clip_dir: Path) -> Path:
    return write_clip(clip_dir / "walk.mp4", WALK, WALK_FRAMES)
