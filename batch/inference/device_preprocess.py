"""Decoding and letterboxing on the model's device (the CUDA path).

JPEGs are decoded for a whole batch in one `torchvision.io.decode_jpeg(list, device=...)` call (nvJPEG
on CUDA, which wants large batches), then resized and padded there, so pixels cross PCIe once as
compressed bytes instead of as decoded arrays. Anything nvJPEG cannot take (other formats, CMYK,
broken files) goes through the CPU path instead, so no image is ever refused because of this path.

Large JPEGs do NOT come here: nvJPEG has no DCT scaling, so a 12 MP photo would be decoded in full
(and its entropy decoding runs on the host anyway in torchvision's hybrid nvJPEG path). Whenever a
JPEG can be decoded at a reduced scale (its longer side is at least twice what the model input and the
annotated image need), the engine takes the CPU path with libjpeg DCT scaling instead (`takes`).
Unmeasured on a GPU so far: see the README.

The code is device-agnostic: on a CPU it runs the same operations (libjpeg-turbo inside
torchvision), which is how it is tested on machines without a GPU.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from batch.inference import letterbox as lb
from batch.inference.decode import Source

log = logging.getLogger(__name__)

_DEVICE_DECODABLE_MODES = {"RGB", "L"}  # YCbCr/grayscale JPEGs; CMYK and others take the CPU path


def takes(source: Source, scale: int) -> bool:
    """Whether the device decoder should decode `source`, which the CPU path would decode at `scale`."""
    return scale == 1 and source.format == "JPEG" and source.mode in _DEVICE_DECODABLE_MODES


def decode_batch(jpegs: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """(3, H, W) uint8 RGB tensors on `device`, EXIF orientation applied; None where decoding failed."""
    from torchvision.io import ImageReadMode, decode_jpeg

    inputs = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in jpegs]
    try:
        decoded = decode_jpeg(inputs, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
        return list(decoded)
    except RuntimeError as exc:
        # One bad file fails the whole batched call: decode one by one to isolate it.
        log.debug("batched JPEG decode failed (%s); decoding singly", exc)
    results: list[torch.Tensor | None] = []
    for tensor in inputs:
        try:
            results.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True))
        except RuntimeError:
            results.append(None)
    return results


def letterbox_tensor(image: torch.Tensor, geometry: lb.Geometry) -> torch.Tensor:
    """The letterboxed canvas as (canvas_h, canvas_w, 3) uint8 on the image's device.

    Bilinear without antialiasing and half-pixel centres: the same sampling as OpenCV's INTER_LINEAR."""
    resized = image
    if (geometry.new_h, geometry.new_w) != tuple(image.shape[1:]):
        scaled = F.interpolate(
            image.unsqueeze(0).float(), size=(geometry.new_h, geometry.new_w), mode="bilinear", align_corners=False
        )
        resized = scaled.squeeze(0).round_().clamp_(0, 255).to(torch.uint8)
    canvas = torch.full((geometry.canvas_h, geometry.canvas_w, 3), lb.PAD_VALUE, dtype=torch.uint8, device=image.device)
    top, left = geometry.top, geometry.left
    canvas[top : top + geometry.new_h, left : left + geometry.new_w] = resized.permute(1, 2, 0)
    return canvas


def to_numpy_rgb(image: torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 on the host, for annotation; shrunk to `size` (h, w) on the device first, so
    that only the pixels drawn on cross to the host."""
    if size is not None and size != tuple(image.shape[1:]):
        scaled = F.interpolate(image.unsqueeze(0).float(), size=size, mode="bilinear", antialias=True)
        image = scaled.squeeze(0).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
