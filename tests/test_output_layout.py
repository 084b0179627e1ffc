"""The one mirrored-layout rule every flow follows (predict, Batch Transform, async)."""

from __future__ import annotations

import pytest

from batch.output_layout import (
    annotated_key,
    annotated_name_owner,
    annotated_name_owners,
    annotated_name_partner,
    keypoints_key,
)


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


@pytest.mark.parametrize(
    ("rel", "ext", "annotated"),
    [
        ("clip.mp4", ".mp4", "annotated/clip.mp4"),  # issue 24's video rule: the same rule, another extension
        ("clip.MP4", ".mp4", "annotated/clip.MP4"),
        ("clip.mov", ".mp4", "annotated/clip.mov.mp4"),
        ("x.jpeg", ".mp4", "annotated/x.jpeg.mp4"),
    ],
)
def test_the_rule_is_the_same_for_any_extension(rel: str, ext: str, annotated: str) -> None:
    assert annotated_key(rel, ext) == annotated


@pytest.mark.parametrize(
    ("rels", "taken"),
    [
        # a.png -> annotated/a.png.jpg, which is a.png.jpg's own name: a.png gives way, whatever the order
        (["a.png", "a.png.jpg"], {"a.png": "a.png.jpg"}),
        (["d/a.png.jpg", "d/a.png", "d/b.png"], {"d/a.png": "d/a.png.jpg"}),
        (["x.png", "x.jpg", "x.jpeg", "a.png.JPG", "a.png.jpeg"], {}),  # different names
        (["clip.mov", "clip.mov.mp4", "clip.mp4"], {"clip.mov": "clip.mov.mp4"}),  # videos: the same rule
        (["a.mov", "a.mov.jpg"], {}),  # a.mov's is a.mov.mp4; a.mov.jpg is an image of its own name
    ],
)
def test_inputs_asking_for_one_annotated_name(rels: list[str], taken: dict[str, str]) -> None:
    assert annotated_name_owners(rels) == taken
    for loser, owner in taken.items():  # one key at a time (the S3 trigger): each names the other
        assert annotated_name_owner(loser) == owner
        assert annotated_name_partner(owner) == loser


def test_one_key_at_a_time_names_the_other_input_to_look_for() -> None:
    assert annotated_name_owner("x.jpg") is None and annotated_name_partner("x.jpg") == "x"  # x: not an image
    assert annotated_name_partner("x.png") is None and annotated_name_partner(".jpg") is None
    assert annotated_name_partner("a.png.jpeg") is None  # a.png -> a.png.jpg, not .jpeg
    assert annotated_name_partner("clip.mov.jpg") is None  # clip.mov -> clip.mov.mp4
