"""The CUDA path's pre-processing, run on the CPU: same shapes, same pixels (within rounding), same
fallbacks as the CPU path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from batch.inference import device_preprocess
from batch.inference import letterbox as lb
from batch.inference.decode import open_image
from batch.inference.device_preprocess import decode_batch, letterbox_tensor, to_numpy_rgb
from tests.builders import encode, gradient

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("height", "width", "imgsz"), [(480, 640, 640), (1080, 810, 640), (37, 500, 320), (720, 1280, 1280)]
)
def test_tensor_letterbox_matches_opencv(height: int, width: int, imgsz: int) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    geometry = lb.plan(height, width, imgsz)
    expected = lb.letterbox(rgb, geometry)
    actual = letterbox_tensor(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), geometry)
    assert actual.shape == expected.shape and actual.dtype == torch.uint8 and actual.device == CPU
    difference = np.abs(actual.numpy().astype(int) - expected.astype(int))
    assert difference.mean() < 1.0  # OpenCV rounds in fixed point; a level here and there
    assert (actual.numpy()[: geometry.top] == lb.PAD_VALUE).all()


def test_what_the_device_decoder_takes() -> None:
    def takes(data: bytes, min_side: int = 640) -> bool:
        source = open_image(data, max_pixels=10**8)
        return device_preprocess.takes(source, source.scale_for(min_side))

    assert takes(encode(gradient(64, 48), "JPEG"))
    assert not takes(encode(gradient(64, 48), "PNG"))  # other formats: CPU path
    assert not takes(encode(gradient().convert("CMYK"), "JPEG"))
    assert not takes(encode(gradient(4032, 3024), "JPEG"))  # reducible: the CPU's DCT scaling wins
    assert takes(encode(gradient(4032, 3024), "JPEG"), min_side=4032)  # needed in full: nvJPEG


def test_batched_decode_isolates_a_bad_file() -> None:
    good = encode(gradient(64, 48), "JPEG", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode(gradient(64, 48), "JPEG", quality=95, exif=exif)
    decoded = decode_batch([good, b"\xff\xd8\xff\xe0 not really a jpeg", rotated], CPU)
    assert decoded[1] is None
    assert decoded[0] is not None and tuple(decoded[0].shape) == (3, 48, 64)
    assert decoded[2] is not None and tuple(decoded[2].shape) == (3, 64, 48)  # EXIF applied
    assert to_numpy_rgb(decoded[0]).shape == (48, 64, 3)
