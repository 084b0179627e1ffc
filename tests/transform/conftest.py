from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transform.jobs import TransformStack


@pytest.fixture(scope="module")
def transform_stack(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[TransformStack]:
    """The embedded stack (moto + SageMaker stand-in + completion plumbing) with the model uploaded."""
    started = TransformStack.start(tmp_path_factory.mktemp("stack"), model_path, bucket="posebatch-e2e")
    yield started
    started.stack.stop()
