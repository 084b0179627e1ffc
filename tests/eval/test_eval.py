"""`pose-batch eval` on COCO-val-mini (../shared/data/coco-val-mini).

- The real model through the real server at conf 0.001, records written in the product's mirrored layout:
  the command must print the AP the existing accuracy test computes (0.446 +- 0.005).
- Records made from the annotations themselves: AP 1 and every joint perfect; one joint moved away: only
  that joint's figures fall.
- Bad input: a clear error, exit code 2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batch.evaluation import evaluate
from batch.report.sources import LocalSource
from tests.conftest import COCO_DIR, REPO_ROOT
from tests.inference.test_coco_accuracy import REFERENCE_AP, coco_images, pose_all, reference_keypoint_ap

ANNOTATIONS = COCO_DIR / "person_keypoints.json"
SUBFOLDER = "val2017"  # records live under keypoints/val2017/: matched by base name


def pose_batch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "YOLO_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "batch.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def write_records(root: Path, records: dict[str, dict[str, Any]]) -> Path:
    for name, record in records.items():
        path = root / "keypoints" / SUBFOLDER / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return root


def reference_ap(results: dict[str, dict[str, Any]], tmp_path: Path) -> float:
    """The existing accuracy test's computation, on the same results."""
    return reference_keypoint_ap(results, tmp_path)


@pytest.mark.slow
def test_eval_of_real_outputs_matches_the_accuracy_test(server_url: str, tmp_path: Path) -> None:
    results = pose_all(server_url, coco_images(), "conf=0.001;iou=0.7;max_det=300")
    output = write_records(tmp_path / "job", results)
    # an input that is not in the annotations, and failed: counted, never scored
    write_records(output, {"not-annotated.jpg": {"error": {"code": "invalid_image", "message": "x"}}})
    expected = reference_ap(results, tmp_path)

    text = pose_batch("eval", str(output), "--annotations", str(ANNOTATIONS))
    assert text.returncode == 0, text.stderr
    print(text.stdout)
    shown = re.search(r"\bAP (\d\.\d{3})\b", text.stdout)
    assert shown is not None, text.stdout
    # The display rounds to 3 decimals (the exact figure is checked in the JSON below): an AP such as
    # 0.44849997 here and 0.44850001 in the command's own float sums may print either way.
    assert abs(float(shown.group(1)) - expected) <= 0.0005 + 1e-6
    assert abs(float(shown.group(1)) - REFERENCE_AP) <= 0.005

    as_json = pose_batch("eval", str(output), "--annotations", str(ANNOTATIONS), "--json")
    assert as_json.returncode == 0, as_json.stderr
    figures = json.loads(as_json.stdout)
    assert figures["stats"]["AP"] == pytest.approx(expected, abs=1e-6)
    assert abs(figures["stats"]["AP"] - REFERENCE_AP) <= 0.005
    assert (figures["matched"], figures["missing"], figures["unmatched"]) == (79, 0, 1)
    assert figures["unmatched_examples"] == [f"{SUBFOLDER}/not-annotated.jpg"]
    joints = figures["joints"]
    assert [j["name"] for j in joints][:3] == ["nose", "left_eye", "right_eye"] and len(joints) == 17
    assert all(j["labelled"] > 0 and 0.3 < j["mean_ks"] <= 1 and 0.3 < j["pck"] <= 1 for j in joints), joints


def records_from_annotations(shift: dict[int, float] | None = None) -> dict[str, dict[str, Any]]:
    """One perfect result per annotated image: every non-crowd person with keypoints, at its annotated
    keypoints (joint j moved right by shift[j] px)."""
    data = json.loads(ANNOTATIONS.read_text())
    records: dict[str, dict[str, Any]] = {Path(i["file_name"]).name: {"persons": []} for i in data["images"]}
    names = {i["id"]: Path(i["file_name"]).name for i in data["images"]}
    for ann in data["annotations"]:
        if ann.get("iscrowd") or not ann.get("num_keypoints"):
            continue
        points = [ann["keypoints"][k : k + 3] for k in range(0, len(ann["keypoints"]), 3)]
        keypoints = [[x + (shift or {}).get(j, 0.0), y, 1.0 if v else 0.0] for j, (x, y, v) in enumerate(points)]
        records[names[ann["image_id"]]]["persons"].append({"score": 1.0, "keypoints": keypoints})
    return records


def test_perfect_records_score_one(tmp_path: Path) -> None:
    result = evaluate(ANNOTATIONS, LocalSource(write_records(tmp_path, records_from_annotations())))
    assert result.stats["AP"] == pytest.approx(1.0)
    assert result.stats["AR"] == pytest.approx(1.0)
    assert all(j.mean_ks == pytest.approx(1.0) and j.pck == 1.0 for j in result.joints)
    assert sum(j.labelled for j in result.joints) > 500


def test_a_misplaced_joint_shows_in_its_own_figures(tmp_path: Path) -> None:
    wrist = 9  # left_wrist; 40 px is far for a wrist (COCO sigma 0.062) on most persons here
    result = evaluate(ANNOTATIONS, LocalSource(write_records(tmp_path, records_from_annotations({wrist: 40.0}))))
    by_name = {j.name: j for j in result.joints}
    assert by_name["left_wrist"].mean_ks is not None and by_name["left_wrist"].mean_ks < 0.6
    assert all(j.mean_ks == pytest.approx(1.0) for j in result.joints if j.name != "left_wrist")
    assert result.stats["AP"] < 1.0


def test_missing_records_count_as_misses(tmp_path: Path) -> None:
    records = records_from_annotations()
    kept = dict(list(records.items())[: len(records) // 2])
    source = LocalSource(write_records(tmp_path, kept))
    strict = evaluate(ANNOTATIONS, source)
    matched_only = evaluate(ANNOTATIONS, source, only_matched=True)
    assert strict.missing == len(records) - len(kept)
    assert strict.stats["AR"] < 1.0
    assert matched_only.stats["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing annotations", "cannot read COCO annotations"),
        ("no keypoint category", "no keypoint category"),
        ("no matching record", "matches an image"),
        ("no such folder", "not a folder"),
    ],
)
def test_bad_input_gets_a_clear_error(setup: str, message: str, tmp_path: Path) -> None:
    annotations, output = ANNOTATIONS, write_records(tmp_path / "out", {"other.jpg": {"persons": []}})
    if setup == "missing annotations":
        annotations = tmp_path / "nope.json"
    elif setup == "no keypoint category":
        annotations = tmp_path / "boxes.json"
        annotations.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "p"}]}))
    elif setup == "no such folder":
        output = tmp_path / "absent"
    done = pose_batch("eval", str(output), "--annotations", str(annotations))
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr
