from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def detect_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Ultralytics *detect* checkpoint (untrained, built from the packaged yolo11n.yaml; no download):
    the mistake of passing a detector where a pose model is expected."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("detect") / "det.pt"
    YOLO("yolo11n.yaml").save(str(path))
    return path
