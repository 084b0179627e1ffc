"""Finding the checkpoint: POSE_MODEL, then /opt/ml/model (SM_MODEL_DIR); clear errors otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batch.errors import ModelLoadError
from batch.inference.model_source import describe, load_yolo, resolve_checkpoint
from batch.settings import Settings
from tests.conftest import MODEL_PATH, REPO_ROOT


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_explicit_path(tmp_path: Path) -> None:
    assert resolve_checkpoint(settings(POSE_MODEL=str(MODEL_PATH), SM_MODEL_DIR=str(tmp_path))) == str(MODEL_PATH)


def test_path_relative_to_model_dir(tmp_path: Path) -> None:
    shutil.copy(MODEL_PATH, tmp_path / "custom.pt")
    found = resolve_checkpoint(settings(POSE_MODEL="custom.pt", SM_MODEL_DIR=str(tmp_path)))
    assert found == str(tmp_path / "custom.pt")


def test_model_name_is_left_to_ultralytics(tmp_path: Path) -> None:
    assert resolve_checkpoint(settings(POSE_MODEL="yolov8n-pose.pt", SM_MODEL_DIR=str(tmp_path))) == "yolov8n-pose.pt"


def test_single_checkpoint_in_model_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(MODEL_PATH, tmp_path / "sub" / "pose.pt")
    assert resolve_checkpoint(settings(SM_MODEL_DIR=str(tmp_path))) == str(tmp_path / "sub" / "pose.pt")


@pytest.mark.parametrize(
    ("layout", "env", "fragment"),
    [
        ([], {"POSE_MODEL": "/nonexistent/dir/model.pt"}, "does not exist"),
        ([], {}, "holds no *.pt checkpoint"),
        (["a.pt", "b.pt"], {}, "several checkpoints"),
        (None, {}, "does not exist"),
    ],
)
def test_missing_or_ambiguous_model_is_a_clear_error(
    tmp_path: Path, layout: list[str] | None, env: dict[str, str], fragment: str
) -> None:
    model_dir = tmp_path / "model"
    if layout is not None:
        model_dir.mkdir()
        for name in layout:
            (model_dir / name).write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=fragment.replace("*", r"\*")):
        resolve_checkpoint(settings(SM_MODEL_DIR=str(model_dir), **env))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a torch checkpoint")
    with pytest.raises(ModelLoadError, match="could not load pose model"):
        load_yolo(str(broken))


def test_undownloadable_model_name_is_a_clear_error() -> None:
    # No internet here (YOLO_OFFLINE=1): Ultralytics cannot fetch it, and the error says so.
    with pytest.raises(ModelLoadError, match="not a file: Ultralytics tried to download it"):
        load_yolo("yolov8n-pose.pt")


def test_coco_model_description() -> None:
    info = describe(load_yolo(str(MODEL_PATH)), str(MODEL_PATH))
    assert (info.num_keypoints, info.keypoint_dims, info.num_classes) == (17, 3, 1)
    assert info.keypoint_names[:3] == ("nose", "left_eye", "right_eye")
    assert len(info.skeleton) == 19


def test_container_refuses_to_start_without_a_model(tmp_path: Path) -> None:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SM_MODEL_DIR": str(tmp_path / "empty")}
    finished = subprocess.run(
        [str(REPO_ROOT / "container" / "serve"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 1
    assert "POSE_MODEL is unset" in finished.stderr and str(tmp_path / "empty") in finished.stderr
