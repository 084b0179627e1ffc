"""`pose-batch predict` over folders: relative paths kept (a/x.jpg and b/x.jpg both survive), annotated
images are JPEGs under JPEG names only, non-image files are reported, records name their source."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

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
    out = tmp_path / "poses"

    done = pose_batch("predict", str(photos), "--out", str(out), "--model", str(model_path), "--no-report",
                      cwd=tmp_path, env=environment(tmp_path))  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "notes.txt: skipped (not an image or video file)" in done.stdout
    assert "3 posed, 0 failed, 1 skipped" in done.stdout
    records = {p.relative_to(out / "keypoints").as_posix(): json.loads(p.read_text()) for p in out.rglob("*.json")}
    assert sorted(records) == ["a/x.jpg.json", "a/x.png.json", "b/x.jpg.json"]
    assert records["a/x.jpg.json"]["source"] == "a/x.jpg" and records["b/x.jpg.json"]["source"] == "b/x.jpg"
    assert len(records["a/x.jpg.json"]["persons"]) != len(records["b/x.jpg.json"]["persons"])  # bus vs zidane
    assert all(r["schema_version"] == 2 for r in records.values())
    annotated = sorted(p.relative_to(out / "annotated").as_posix() for p in (out / "annotated").rglob("*.*"))
    assert annotated == ["a/x.jpg", "a/x.png.jpg", "b/x.jpg"]
    for name in annotated:
        with Image.open(out / "annotated" / name) as image:
            assert image.format == "JPEG"
