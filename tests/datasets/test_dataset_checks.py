"""Every bad dataset the issue lists gives exit 2 from `pose-batch train`, before any job starts, with a
message naming the file and the line; so does an unknown hyperparameter. Checked on a local folder (the
CLI in-process, and once as the console script) and on an S3 prefix (moto)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from batch.cli import main
from batch.datasets.check import inspect
from batch.datasets.files import LocalFiles
from batch.local.moto_server import MotoServer
from tests.cli.commands import environment, pose_batch
from tests.conftest import COCO_DIR, MODEL_PATH
from tests.training.datasets import coco_folder, five_keypoint_dataset


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return five_keypoint_dataset(tmp_path_factory.mktemp("good"), train=4, val=2, size=64)


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def edit_yaml(root: Path, **changes: object) -> None:
    content = yaml.safe_load((root / "data.yaml").read_text())
    (root / "data.yaml").write_text(yaml.safe_dump({**content, **changes}, sort_keys=False))


def missing_yaml(root: Path) -> str:
    (root / "data.yaml").unlink()
    return "data.yaml: missing: neither a YOLO pose data.yaml"


def kpt_shape_disagrees(root: Path) -> str:
    content = yaml.safe_load((root / "data.yaml").read_text())
    del content["kpt_names"], content["flip_idx"], content["skeleton"]
    (root / "data.yaml").write_text(yaml.safe_dump({**content, "kpt_shape": [17, 3]}, sort_keys=False))
    return f"data.yaml:{line_of(root / 'data.yaml', 'kpt_shape')}: kpt_shape [17, 3] needs 56 values per label row"


def wrong_column_count(root: Path) -> str:
    label = root / "labels" / "train" / "star_1.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.2 0.2 0.5 0.5 2\n")
    number = len(label.read_text().splitlines())
    return f"labels/train/star_1.txt:{number}: 8 values; kpt_shape [5, 3] needs 20"


def outside_the_image(root: Path) -> str:
    label = root / "labels" / "train" / "star_2.txt"
    rows = [row.split() for row in label.read_text().splitlines()]
    rows[0][5 + 3] = "1.7"  # keypoint 1's x
    label.write_text("\n".join(" ".join(row) for row in rows) + "\n")
    return "labels/train/star_2.txt:1: keypoint 1 at (1.7,"


def empty_split(root: Path) -> str:
    for image in (root / "images" / "val").iterdir():
        image.unlink()
    return f"data.yaml:{line_of(root / 'data.yaml', 'val:')}: val: images/val holds no images: an empty split"


def flip_not_a_permutation(root: Path) -> str:
    edit_yaml(root, flip_idx=[0, 1, 1, 3, 4])
    return f"data.yaml:{line_of(root / 'data.yaml', 'flip_idx')}: flip_idx [0, 1, 1, 3, 4] is not a permutation of 0..4"


def coco_json_broken(root: Path) -> str:
    shutil.rmtree(root)
    coco_folder(root, COCO_DIR, train=2, val=1)
    path = root / "annotations" / "person_keypoints_val.json"
    text = json.dumps(json.loads(path.read_text()), indent=1)
    lines = text.splitlines()
    lines[3] = "  @@@"  # junk on line 4
    path.write_text("\n".join(lines))
    return "annotations/person_keypoints_val.json:4: is not valid JSON"


CASES: list[Callable[[Path], str]] = [
    missing_yaml,
    kpt_shape_disagrees,
    wrong_column_count,
    outside_the_image,
    empty_split,
    flip_not_a_permutation,
    coco_json_broken,
]


@pytest.fixture
def copy_of(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "dataset"))


@pytest.mark.parametrize("spoil", CASES, ids=[c.__name__ for c in CASES])
def test_a_bad_dataset_is_exit_2_naming_file_and_line(
    spoil: Callable[[Path], str], copy_of: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = spoil(copy_of)
    code = main(["train", "--data", str(copy_of), "--model", str(MODEL_PATH), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert "training job" not in err  # nothing was created


def test_the_good_dataset_passes(good: Path) -> None:
    described = inspect(LocalFiles(good))
    assert described.kpt_shape == (5, 3)
    assert described.keypoint_names == ("hub", "left_arm", "right_arm", "left_leg", "right_leg")
    assert described.splits["train"].images == 4


def test_an_unknown_hyperparameter_is_exit_2_before_anything(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", str(good), "--model", str(MODEL_PATH), "--hyperparameter", "lr=0.1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "lr: not an Ultralytics train argument (did you mean" in err and "lr0" in err


def test_the_console_script_says_the_same(copy_of: Path, tmp_path: Path) -> None:
    expected = flip_not_a_permutation(copy_of)
    done = pose_batch("train", "--data", str(copy_of), "--epochs", "1", cwd=tmp_path, env=environment(tmp_path))
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert done.stdout == ""


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket="datasets")
        yield server


def test_an_s3_dataset_is_checked_the_same_way(
    moto: MotoServer, copy_of: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = wrong_column_count(copy_of)
    s3 = moto.client("s3")
    for path in copy_of.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "datasets", f"stars/{path.relative_to(copy_of).as_posix()}")
    for key, value in moto.environment.items():
        monkeypatch.setenv(key, value)
    code = main(
        ["train", "--data", "s3://datasets/stars/", "--model", str(MODEL_PATH), "--output", "s3://datasets/out/"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert "s3://datasets/stars/" in err
