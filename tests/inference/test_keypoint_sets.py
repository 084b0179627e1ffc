"""Any keypoint set: real Ultralytics pose checkpoints of 24 (dog-pose), 21 (hand-keypoints) and 12
(tiger-pose) keypoints, built here with untrained weights, get their names and skeleton from the
checkpoint, else from keypoints.yaml beside it (packed into model.tar.gz), else generic ones; through
the loader, the real server and a Batch Transform job on the local stack."""

from __future__ import annotations

import io
import json
import tarfile
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from batch.errors import ModelLoadError
from batch.inference.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON, Declared, from_file, keypoint_set
from batch.inference.model_source import describe, load_yolo
from batch.model_package import package_checkpoint
from tests.conftest import COCO_DIR, MODEL_PATH, ServerFactory

# --- the precedence rule, as a table ----------------------------------------------------------------

DOG = tuple(f"dog_{i}" for i in range(24))
EDGES = ((0, 1), (1, 2))

PRECEDENCE = [
    # count, checkpoint, keypoints.yaml, expected names, expected skeleton, origin
    (24, Declared(DOG, None), Declared(None, EDGES), DOG, EDGES, "checkpoint"),
    (24, Declared(DOG, ((3, 4),)), Declared(None, EDGES), DOG, ((3, 4),), "checkpoint"),
    (24, Declared(), Declared(DOG, EDGES), DOG, EDGES, "keypoints.yaml"),
    (24, Declared(), Declared(), tuple(f"keypoint_{i}" for i in range(24)), (), "generic"),
    (17, Declared(), Declared(), COCO_KEYPOINT_NAMES, COCO_SKELETON, "COCO"),
    (17, Declared(), Declared(None, ()), COCO_KEYPOINT_NAMES, (), "keypoints.yaml"),  # an empty skeleton: none
]


@pytest.mark.parametrize(("count", "checkpoint", "beside", "names", "edges", "origin"), PRECEDENCE)
def test_names_and_skeleton_come_from_the_first_source_that_has_them(
    count: int,
    checkpoint: Declared,
    beside: Declared,
    names: tuple[str, ...],
    edges: tuple[tuple[int, int], ...],
    origin: str,
) -> None:
    chosen = keypoint_set(count, checkpoint, beside)
    assert (chosen.names, chosen.skeleton, chosen.origin) == (names, edges, origin)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("names: [a, b]\n", "lists 2 keypoint names; the model has 3"),
        ("skeleton: [[0, 3]]\n", "not a pair of indices in 0..2"),
        ("skeleton: [[0, 1, 2]]\n", "not a pair"),
        ("edges: [[0, 1]]\n", "must be a mapping"),
        ("names: [a, b\n", "could not be read as YAML"),
    ],
)
def test_a_keypoints_file_that_does_not_fit_is_a_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "keypoints.yaml"
    path.write_text(text)
    with pytest.raises(ModelLoadError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        from_file(path, 3)


# --- real checkpoints of other keypoint counts ------------------------------------------------------


def dataset_names(dataset: str) -> list[str]:
    """The keypoint names Ultralytics' own dataset yaml gives (what its trainer stores in a checkpoint)."""
    import ultralytics

    config = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg" / "datasets" / f"{dataset}.yaml").read_text())
    return list(config["kpt_names"][0])


def build_checkpoint(path: Path, count: int, kpt_names: list[str] | None) -> Path:
    """A yolo11n pose model with `count` keypoints (untrained), saved the way Ultralytics' trainer saves
    one (`model` half precision, `train_args`), so that `YOLO(path)` loads it. `kpt_names=None` stands
    for a dataset without names: the trainer then stores "0", "1", ... (`PoseTrainer.set_model_attributes`)."""
    from ultralytics.nn.tasks import PoseModel
    from ultralytics.utils import DEFAULT_CFG_DICT

    torch.manual_seed(0)
    model = PoseModel("yolo11n-pose.yaml", nc=1, data_kpt_shape=(count, 3), verbose=False)
    model.names = {0: "animal"}
    model.kpt_names = {0: kpt_names or [str(i) for i in range(count)]}
    model.args = {**DEFAULT_CFG_DICT, "task": "pose"}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": deepcopy(model).half(), "train_args": {"task": "pose"}, "date": None}, path)
    return path


@dataclass(frozen=True)
class Case:
    name: str
    count: int
    kpt_names: list[str] | None  # stored in the checkpoint
    keypoints_yaml: dict[str, object] | None  # written beside it
    expect_names: list[str]
    expect_skeleton: list[list[int]]


DOG_SKELETON = [[0, 1], [1, 2], [3, 4], [4, 5], [14, 15], [16, 17], [22, 23]]
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HAND_NAMES = ["wrist"] + [f"{finger}_{joint}" for finger in FINGERS for joint in range(4)]
HAND_SKELETON = [[0, 1 + 4 * f] for f in range(5)] + [
    [1 + 4 * f + j, 2 + 4 * f + j] for f in range(5) for j in range(3)
]


def cases() -> list[Case]:
    dog = dataset_names("dog-pose")
    return [
        # names in the checkpoint (as trained on dog-pose), the skeleton from keypoints.yaml
        Case("dog-24", 24, dog, {"skeleton": DOG_SKELETON}, dog, DOG_SKELETON),
        # no names in the checkpoint: both from keypoints.yaml
        Case("hand-21", 21, None, {"names": HAND_NAMES, "skeleton": HAND_SKELETON}, HAND_NAMES, HAND_SKELETON),
        # nothing: generic names, no skeleton
        Case("tiger-12", 12, None, None, [f"keypoint_{i}" for i in range(12)], []),
    ]


def place(case: Case, directory: Path) -> Path:
    checkpoint = build_checkpoint(directory / f"{case.name}.pt", case.count, case.kpt_names)
    if case.keypoints_yaml is not None:
        (directory / "keypoints.yaml").write_text(yaml.safe_dump(case.keypoints_yaml))
    return checkpoint


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_a_real_checkpoint_gets_its_names_and_skeleton(case: Case, tmp_path: Path) -> None:
    checkpoint = place(case, tmp_path)
    info = describe(load_yolo(str(checkpoint)), str(checkpoint))
    assert info.num_keypoints == case.count
    assert list(info.keypoint_names) == case.expect_names
    assert [list(edge) for edge in info.skeleton] == case.expect_skeleton


def test_the_coco_checkpoint_keeps_cocos_names_and_skeleton() -> None:
    info = describe(load_yolo(str(MODEL_PATH)), str(MODEL_PATH))
    assert info.keypoint_names == COCO_KEYPOINT_NAMES and info.skeleton == COCO_SKELETON


def test_package_model_puts_keypoints_yaml_beside_the_checkpoint(tmp_path: Path) -> None:
    case = cases()[0]
    checkpoint = place(case, tmp_path / "src")
    archive = package_checkpoint(checkpoint, tmp_path / "model.tar.gz")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["dog-24.pt", "keypoints.yaml"]
        packed = tar.extractfile("keypoints.yaml")
        assert packed is not None and yaml.safe_load(packed.read()) == case.keypoints_yaml
    (tmp_path / "src" / "keypoints.yaml").write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        package_checkpoint(checkpoint, tmp_path / "bad.tar.gz")


# --- through the real server and a Batch Transform job ------------------------------------------------


def coco_jpeg() -> bytes:
    annotations = json.loads((COCO_DIR / "person_keypoints.json").read_text())
    return (COCO_DIR / "images" / annotations["images"][0]["file_name"]).read_bytes()


@pytest.fixture(scope="module")
def dog_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/opt/ml/model as SageMaker unpacks it: the model.tar.gz that package-model made, extracted."""
    source = tmp_path_factory.mktemp("dog-src")
    archive = package_checkpoint(place(cases()[0], source), source / "model.tar.gz")
    model_dir = tmp_path_factory.mktemp("dog-model")
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    return model_dir


@pytest.mark.slow
def test_the_server_answers_with_the_checkpoints_keypoint_set(
    server_factory: ServerFactory, dog_model_dir: Path
) -> None:
    case = cases()[0]
    # Untrained weights: a very low threshold so that boxes come out and their keypoints can be counted.
    url = server_factory(POSE_MODEL=str(dog_model_dir / "dog-24.pt"), POSE_CONF="0.001", POSE_MAX_DET="5")
    response = httpx.post(
        f"{url}/invocations", content=coco_jpeg(), headers={"Content-Type": "image/jpeg"}, timeout=120
    )
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["model"] == "dog-24.pt"
    assert record["keypoint_names"] == case.expect_names
    assert record["skeleton"] == case.expect_skeleton
    assert record["persons"], "at conf 0.001 the untrained model still answers boxes"
    assert all(len(person["keypoints"]) == 24 for person in record["persons"])

    annotated = httpx.post(
        f"{url}/invocations",
        content=coco_jpeg(),
        headers={"Content-Type": "image/jpeg", "Accept": "image/jpeg"},
        timeout=120,
    )
    assert annotated.status_code == 200 and annotated.content[:2] == b"\xff\xd8"


def test_the_annotated_image_draws_an_arbitrary_skeleton() -> None:
    """annotate.draw connects any index pairs the record names (here dog keypoints 14-23)."""
    from batch.annotate import draw
    from batch.schema import ImageSize, Person, PoseResult, Thresholds

    points = [(20.0 + 20 * (i % 6), 20.0 + 30 * (i // 6), 0.9) for i in range(24)]
    result = PoseResult(
        model="dog-24.pt",
        image=ImageSize(width=160, height=160),
        keypoint_names=[f"k{i}" for i in range(24)],
        skeleton=[(14, 15), (16, 17), (22, 23)],
        persons=[Person(score=0.9, box=(5.0, 5.0, 150.0, 150.0), keypoints=points)],
        thresholds=Thresholds(conf=0.25, iou=0.7, max_det=300, imgsz=640),
    )
    blank = np.zeros((160, 160, 3), np.uint8)
    with_edges = draw(blank, result)
    without = draw(blank, result.model_copy(update={"skeleton": []}))
    midpoint = (int(points[22][1]), int((points[22][0] + points[23][0]) / 2))  # on the 22-23 edge
    assert with_edges[midpoint].any() and not without[midpoint].any()


@pytest.mark.slow
def test_a_batch_transform_job_with_a_packaged_keypoint_set(tmp_path_factory: pytest.TempPathFactory) -> None:
    """package-model's archive (checkpoint + keypoints.yaml) -> the local stack's Batch Transform -> records."""
    from batch.commands.transform import execute
    from batch.transform.launcher import LaunchOptions
    from tests.transform.jobs import TransformStack, objects

    case = cases()[0]
    checkpoint = place(case, tmp_path_factory.mktemp("dog-ckpt"))
    stack = TransformStack.start(tmp_path_factory.mktemp("stack"), checkpoint, bucket="posebatch-kpts")
    try:
        s3 = stack.stack.client("s3")
        image = Image.open(io.BytesIO(coco_jpeg()))
        s3.put_object(Bucket=stack.bucket, Key="dogs/in/a.jpg", Body=coco_jpeg())
        s3.put_object(Bucket=stack.bucket, Key="dogs/in/b.png", Body=_png(image))
        options = LaunchOptions(
            input=f"s3://{stack.bucket}/dogs/in/",
            output=f"s3://{stack.bucket}/dogs/out/",
            model_data=stack.model_data,
            instance_type="ml.m5.xlarge",
            environment={"POSE_CONF": "0.001", "POSE_MAX_DET": "5"},
        )
        code, summary = execute(
            options, wait=True, poll_s=0.5, summary_wait_s=90, show_progress=False, clients=stack.stack.client
        )
        assert code == 0 and summary is not None and (summary["done"], summary["failed"]) == (2, 0)
        outputs = objects(s3, stack.bucket, "dogs/out/")
        for rel in ("a.jpg", "b.png"):
            record = json.loads(outputs[f"keypoints/{rel}.json"])
            assert record["keypoint_names"] == case.expect_names
            assert record["skeleton"] == case.expect_skeleton
            assert record["persons"] and all(len(p["keypoints"]) == 24 for p in record["persons"])
        assert any(key.startswith("annotated/") for key in outputs)
    finally:
        stack.stack.stop()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
