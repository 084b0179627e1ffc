"""One entry for both layouts: which one a folder (or S3 prefix) holds, checked (`inspect`), and, where the
training runs, the data.yaml Ultralytics trains from (`prepare`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from batch.datasets import coco_folder, yolo_layout
from batch.datasets.files import DatasetFiles, LocalFiles
from batch.datasets.keypoint_set import KeypointDataset
from batch.datasets.problems import DatasetError, Problem


def inspect(files: DatasetFiles) -> KeypointDataset:
    """The dataset's description, every problem found first raised as one DatasetError."""
    names = files.names()
    if not names:
        raise DatasetError(files.location, [Problem(".", None, "is empty or does not exist")])
    yaml_file = yolo_layout.find_yaml(names)
    if yaml_file is not None:
        return yolo_layout.check(files, yaml_file)
    json_files = coco_folder.find_json(names)
    if json_files:
        return coco_folder.check(files, json_files)
    top = [n for n in names if "/" not in n]
    several = [n for n in top if n.rsplit(".", 1)[-1].lower() in ("yaml", "yml")]
    message = (
        f"several yaml files ({', '.join(several)}) and none is named data.yaml"
        if several
        else "missing: neither a YOLO pose data.yaml (kpt_shape, flip_idx, names, train, val) nor a COCO "
        "keypoints JSON (at the top or under annotations/) is in the folder"
    )
    raise DatasetError(files.location, [Problem(yolo_layout.YAML_NAME, None, message)])


def prepare(root: Path, work: Path) -> tuple[Path, KeypointDataset]:
    """Where the training runs: the data.yaml to train from (under `work`; the dataset may be read-only)
    and the dataset's description. A COCO folder is converted; a YOLO one gets a copy of its yaml whose
    `path` is the folder."""
    files = LocalFiles(root)
    dataset = inspect(files)
    work.mkdir(parents=True, exist_ok=True)
    if dataset.layout == "coco":
        return coco_folder.convert(root, coco_folder.find_json(files.names()), work / "converted"), dataset
    content = yaml.safe_load((root / dataset.description_file).read_text(encoding="utf-8-sig"))
    content["path"] = str(root.resolve())
    content.pop("download", None)  # checked already: nothing to fetch
    path = work / yolo_layout.YAML_NAME
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path, dataset
