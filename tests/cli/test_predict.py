"""`pose-batch predict` over folders: relative paths kept (a/x.jpg and b/x.jpg both survive), annotated
images are JPEGs under JPEG names only, non-image files are reported, records name their source; links
posed under their own names, an input that would take another's annotated name refused, special files
never read, and an --out that overlaps the inputs refused (tests/cli/test_mistakes.py)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from batch.commands.common import UserError
from batch.commands.predict import check_output_folder, collect_images
from tests.cli.commands import environment, pose_batch


def test_predict_keeps_relative_paths_and_reports_skipped_files(
    tmp_path: Path, sample_images: dict[str, bytes], model_path: Path
) -> None:
    photos = tmp_path / "photos"
    for folder, name in (("a", "bus.jpg"), ("b", "zidane.jpg")):
        (photos / folder).mkdir(parents=True)
        (photos / folder / "x.jpg").write_bytes(sample_images[name])
    png = io.BytesIO()
    Image.open(io.BytesIO(sample_images["zidane.jpg"])).save(png, "PNG")
    (photos / "a" / "x.png").write_bytes(png.getvalue())  # same stem as a/x.jpg
    (photos / "notes.txt").write_text("not an image")
    # The hostile part: x.png.jpg keeps the annotated name x.png would take, links in and out of the
    # folder, a link to a folder, and a FIFO named like an image (reading it would wait for ever).
    (photos / "a" / "x.png.jpg").write_bytes(sample_images["bus.jpg"])
    (photos / "b" / "same.jpg").symlink_to("x.jpg")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "bus.jpg").write_bytes(sample_images["bus.jpg"])
    (photos / "outside.jpg").symlink_to(tmp_path / "elsewhere" / "bus.jpg")
    (photos / "folder-link").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(photos / "pipe.jpg")
    os.mkfifo(photos / "pipe.mp4")  # and one named like a video
    out = tmp_path / "poses"

    done = pose_batch("predict", str(photos), "--out", str(out), "--model", str(model_path), "--no-report",
                      cwd=tmp_path, env=environment(tmp_path), timeout_s=300)  # fmt: skip

    assert done.returncode == 1, done.stderr  # three inputs failed: exit 1, the rest posed
    assert "notes.txt: skipped (not an image or video file)" in done.stdout
    assert "folder-link: skipped (a link to a folder (not followed))" in done.stdout
    assert "5 posed, 3 failed, 2 skipped" in done.stdout
    records = {p.relative_to(out / "keypoints").as_posix(): json.loads(p.read_text()) for p in out.rglob("*.json")}
    assert sorted(records) == [
        "a/x.jpg.json", "a/x.png.jpg.json", "a/x.png.json", "b/same.jpg.json", "b/x.jpg.json", "outside.jpg.json",
        "pipe.jpg.json",
    ]  # fmt: skip
    assert records["a/x.jpg.json"]["source"] == "a/x.jpg" and records["b/x.jpg.json"]["source"] == "b/x.jpg"
    assert len(records["a/x.jpg.json"]["persons"]) != len(records["b/x.jpg.json"]["persons"])  # bus vs zidane
    assert records["b/same.jpg.json"]["source"] == "b/same.jpg"  # the link's own name, the target's persons
    assert records["b/same.jpg.json"]["persons"] == records["b/x.jpg.json"]["persons"]
    assert records["outside.jpg.json"]["persons"] == records["a/x.jpg.json"]["persons"]  # the bus, from outside
    assert records["a/x.png.json"]["error"]["code"] == "annotated_name_taken"
    assert "annotated/a/x.png.jpg" in records["a/x.png.json"]["error"]["message"]
    assert records["pipe.jpg.json"]["error"]["code"] == "unreadable_file"
    assert "not a regular file (a FIFO)" in records["pipe.jpg.json"]["error"]["message"]
    video_error = json.loads((out / "keypoints" / "pipe.mp4.jsonl").read_text().splitlines()[0])["error"]
    assert video_error["code"] == "unreadable_file" and "a FIFO" in video_error["message"]
    assert all(r["schema_version"] == 2 for r in records.values() if "error" not in r)
    annotated = sorted(p.relative_to(out / "annotated").as_posix() for p in (out / "annotated").rglob("*.*"))
    assert annotated == ["a/x.jpg", "a/x.png.jpg", "b/same.jpg", "b/x.jpg", "outside.jpg"]
    for name in annotated:
        with Image.open(out / "annotated" / name) as image:
            assert image.format == "JPEG"
    with Image.open(out / "annotated" / "a" / "x.png.jpg") as kept:
        assert kept.size == (750, 1000)  # x.png.jpg's own (the bus), not x.png's (zidane, 1000 x 562)


def test_links_get_relative_paths_of_their_own(tmp_path: Path) -> None:
    """Relative paths come from the links' own paths, never from what they point to: a link out of the
    folder once aborted the whole run (ValueError), a link to an image inside it got no output."""
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    (folder / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (folder / "sub" / "a.jpg").write_bytes(b"a")
    (elsewhere / "b.jpg").write_bytes(b"b")
    (folder / "in.jpg").symlink_to(folder / "sub" / "a.jpg")
    (folder / "out.jpg").symlink_to(elsewhere / "b.jpg")
    (folder / "broken.jpg").symlink_to(tmp_path / "nothing.jpg")  # posed: its error record says why
    (folder / "loop").symlink_to(folder)

    found = collect_images([folder])

    assert [rel for _, rel in found.images] == ["broken.jpg", "in.jpg", "out.jpg", "sub/a.jpg"]
    assert [(path.name, why) for path, why in found.skipped] == [("loop", "a link to a folder (not followed)")]
    assert collect_images([folder / "out.jpg"]).images == [(folder / "out.jpg", "out.jpg")]


@pytest.mark.parametrize(
    ("inputs", "out", "message"),
    [
        (["photos"], "photos", "is inside the input folder"),
        (["photos"], "photos/poses", "is inside the input folder"),
        (["photos"], "photos-link/poses", "is inside the input folder"),  # through a link: the same folder
        (["photos/sub"], "photos", "is inside --out"),
        (["photos/sub/a.jpg"], "photos/sub", "is inside --out"),
    ],
)
def test_an_out_folder_overlapping_the_inputs_is_refused(
    tmp_path: Path, inputs: list[str], out: str, message: str
) -> None:
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "photos" / "sub" / "a.jpg").write_bytes(b"a")
    (tmp_path / "photos-link").symlink_to(tmp_path / "photos")
    with pytest.raises(UserError, match=message):
        check_output_folder(tmp_path / out, [tmp_path / p for p in inputs])
    check_output_folder(tmp_path / "poses", [tmp_path / p for p in inputs])  # beside the inputs: fine
