"""`pose-batch demo`, the README's main command: its own stack, a folder of images, outputs copied."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from batch.commands import demo

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_flow(
    tmp_path: Path, model_path: Path, sample_images: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    (images / "sub folder").mkdir(parents=True)
    (images / "bus.jpg").write_bytes(sample_images["bus.jpg"])
    (images / "sub folder" / "zidané.jpg").write_bytes(sample_images["zidane.jpg"])
    parser = argparse.ArgumentParser()
    demo.register(parser.add_subparsers())
    out = tmp_path / "demo-output"
    home = tmp_path / "home"
    argv = ["demo", "--images", str(images), "--out", str(out), "--model", str(model_path), "--home", str(home)]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    printed = capsys.readouterr()
    assert "SNS notification" in printed.out and ": Completed" in printed.out
    assert "mode: images mode (chosen by --mode auto: 2 images, fewer than 64" in printed.err
    # Not a terminal: plain progress lines, the last at the end, never a redrawn bar.
    progress = [line for line in printed.err.splitlines() if line.startswith("posebatch-images-")]
    assert progress and progress[-1].split(": ", 1)[1].startswith("2/2 img (100%)") and "\r" not in printed.err
    # The report comes with the outputs, and its path is the last line.
    assert printed.out.strip().splitlines()[-1] == f"open the report: {(out / '_REPORT.html').resolve()}"
    assert "<html" in (out / "_REPORT.html").read_text()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "_REPORT.html",
        "_SUMMARY.json",
        "annotated/bus.jpg",
        "annotated/sub folder/zidané.jpg",
        "keypoints/bus.jpg.json",
        "keypoints/sub folder/zidané.jpg.json",
    ]
    assert json.loads((out / "_SUMMARY.json").read_text())["done"] == 2
