"""The one mirrored-layout rule every flow follows (predict, Batch Transform, async)."""

from __future__ import annotations

import pytest

from batch.output_layout import annotated_key, keypoints_key


@pytest.mark.parametrize(
    ("rel", "keypoints", "annotated"),
    [
        ("x.jpg", "keypoints/x.jpg.json", "annotated/x.jpg"),
        ("a/X.JPEG", "keypoints/a/X.JPEG.json", "annotated/a/X.JPEG"),
        # JPEG bytes never wear another format's extension, and x.png never lands on x.jpg's name
        ("x.png", "keypoints/x.png.json", "annotated/x.png.jpg"),
        ("b/scan.tiff", "keypoints/b/scan.tiff.json", "annotated/b/scan.tiff.jpg"),
        # videos: JSON Lines, and an H.264 MP4 under an .mp4 name (clip.mov -> clip.mov.mp4)
        ("clip.mp4", "keypoints/clip.mp4.jsonl", "annotated/clip.mp4"),
        ("a/clip.mov", "keypoints/a/clip.mov.jsonl", "annotated/a/clip.mov.mp4"),
        ("c/CAM.MKV", "keypoints/c/CAM.MKV.jsonl", "annotated/c/CAM.MKV.mp4"),
    ],
)
def test_mirrored_keys(rel: str, keypoints: str, annotated: str) -> None:
    assert (keypoints_key(rel), annotated_key(rel)) == (keypoints, annotated)


def test_png_and_jpg_of_the_same_stem_do_not_collide() -> None:
    assert annotated_key("x.png") != annotated_key("x.jpg")
