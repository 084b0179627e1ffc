"""Image bytes -> an RGB uint8 array, upright, whatever the input format.

The pixel limit is checked from the header, before any pixel is decoded, so a decompression bomb
costs nothing. Modes are normalised the way OpenCV's `imread` (what Ultralytics reads with) does:
alpha dropped, palette/CMYK/grayscale to RGB, 16-bit scaled to 8-bit.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from batch.errors import EmptyBody, ImageTooLarge, InvalidImage

try:
    # Ultralytics patches `Image.open` to pip-install a HEIF plugin when Pillow cannot identify the
    # data; a server must never do that on bad input, so use Pillow's own opener.
    from ultralytics.utils.patches import _image_open as _pil_open
except ImportError:  # pragma: no cover - other Ultralytics versions
    _pil_open = Image.open

# Our own limit (settings) is the one that matters; Pillow's is only a last line of defence.
Image.MAX_IMAGE_PIXELS = None
Image.init()  # register every plugin now, so `formats=` below can name them

_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG covers multi-picture (MPO) files


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (height, width, 3) uint8, C-contiguous

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    if not data:
        raise EmptyBody("the request body is empty; send the image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _pil_open(io.BytesIO(data), formats=_FORMATS)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise InvalidImage(f"image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            rgb = _to_rgb_array(image)
    except (ImageTooLarge, InvalidImage):
        raise
    except UnidentifiedImageError:
        raise InvalidImage("the body is not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Truncated or corrupt data: Pillow raises OSError ("image file is truncated") and friends.
        raise InvalidImage(f"the image could not be decoded: {_short(exc)}") from None
    return DecodedImage(np.ascontiguousarray(rgb))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit or float grayscale: scale the full range to 8 bits (Pillow's convert would clip).
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(values.max()), 1.0)
        gray = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode != "RGB":
        # P, PA, L, LA, RGBA, CMYK, YCbCr, 1: Pillow's conversion to RGB drops alpha like OpenCV does.
        image = image.convert("RGBA" if mode in ("P", "PA") else mode).convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
