"""Image bytes -> an RGB uint8 array, upright, whatever the input format, at no more pixels than needed.

Two steps, so that the caller can reserve memory between them (see `pixel_budget`):

1. `open_image` reads the header only. The pixel limit is checked there, before any pixel is decoded,
   so a decompression bomb costs nothing.
2. `decode` decodes. A large JPEG is decoded at a reduced DCT scale (libjpeg's 1/2, 1/4 or 1/8, through
   Pillow's `draft`): the smallest scale whose result still has `min_side` pixels on its longer side.
   That skips most of the inverse DCT, colour conversion and memory of a 12 MP photo for a 640 px
   model. Other formats are decoded in full. `DecodedImage.scale` says how many original pixels one
   decoded pixel stands for, so results can be mapped back to original pixels.

Formats: JPEG (and MPO, the multi-picture JPEG of cameras), PNG, WebP, BMP, TIFF, GIF, AVIF (built into
Pillow >= 11.3) and HEIF/HEIC (the iPhone default, through the `pillow-heif` plugin). Every opener reads
the size from the header without decoding, so the pixel limit holds for each. Files of several frames
(animated GIF/WebP, MPO, HEIF sequences) decode their first (primary) frame only; `Source.frames` says
how many there were, so the record can say so. libheif applies a HEIF's rotation (irot/imir) itself and
pillow-heif then resets the EXIF orientation to 1, so `exif_transpose` below never rotates it twice.

Modes are normalised the way OpenCV's `imread` (what Ultralytics reads with) does: alpha dropped,
palette/CMYK/grayscale to RGB, 16-bit scaled to 8-bit. Conversions avoid float64 and whole-image
temporaries: the Pillow image is closed as soon as its pixels are in numpy.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from batch.errors import EmptyBody, ImageTooLarge, InvalidImage

try:
    # Ultralytics patches `Image.open` to pip-install a HEIF plugin when Pillow cannot identify the
    # data; a server must never do that on bad input, so use Pillow's own opener. HEIF is registered
    # below by pillow-heif itself (it adds an opener to Pillow's table and does not touch `Image.open`).
    from ultralytics.utils.patches import _image_open as _pil_open
except ImportError:  # pragma: no cover - other Ultralytics versions
    _pil_open = Image.open

# Our own limit (settings) is the one that matters; Pillow's is only a last line of defence.
Image.MAX_IMAGE_PIXELS = None
Image.init()  # register every plugin now, so `formats=` below can name them
# The primary image only: no embedded thumbnails, depth maps or auxiliary (HDR gain) images read or kept.
register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# JPEG covers multi-picture (MPO) files: Pillow's JPEG opener answers an MPO image for them.
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "AVIF", "HEIF")
_FORMAT_NAMES = "JPEG, MPO, PNG, WebP, BMP, TIFF, GIF, AVIF, HEIC/HEIF"
_BUDGET_WEIGHT = {"AVIF": 1.25, "HEIF": 1.25}  # AV1/HEVC decoders: YUV planes and their own RGB buffer
_DCT_SCALES = (8, 4, 2)  # libjpeg's reductions that Pillow's draft() offers, largest first
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class Source:
    """An image whose header has been read and checked; its pixels are not decoded yet."""

    image: Image.Image
    width: int  # upright (EXIF orientation applied), original pixels
    height: int
    frames: int = 1  # frames or pictures in the file; only the first is decoded

    @property
    def format(self) -> str:
        return str(self.image.format or "")

    @property
    def mode(self) -> str:
        return str(self.image.mode)

    def scale_for(self, min_side: int) -> int:
        """The largest DCT reduction whose result keeps `min_side` pixels on the longer side (1 = full).

        Only baseline/progressive JPEGs in one tile can be reduced; everything else decodes in full."""
        if min_side <= 0 or self.format not in ("JPEG", "MPO") or len(getattr(self.image, "tile", ())) != 1:
            return 1
        longer = max(self.width, self.height)
        return next((s for s in _DCT_SCALES if -(-longer // s) >= min_side), 1)

    def pixels_at(self, scale: int) -> int:
        """What decoding at `scale` costs in the pixel budget: its pixels, weighted for codecs whose
        decoders hold their own planes besides Pillow's (AVIF measured 12.2 bytes per pixel at peak for a
        12 MP photo, HEIC 9.9, PNG 10.0; the budget's bound assumes at most 12, README "Photos and memory")."""
        pixels = -(-self.width // scale) * -(-self.height // scale)
        return int(pixels * _BUDGET_WEIGHT.get(self.format, 1.0))


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (height, width, 3) uint8, C-contiguous
    scale: int = 1  # original pixels per decoded pixel, along each axis (JPEG DCT scaling)
    original_size: tuple[int, int] | None = None  # (width, height) of the full image; None: as decoded

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def original_width(self) -> int:
        return self.original_size[0] if self.original_size else self.width

    @property
    def original_height(self) -> int:
        return self.original_size[1] if self.original_size else self.height


def open_image(data: bytes, *, max_pixels: int) -> Source:
    """Read and check the header. Raises EmptyBody, InvalidImage or ImageTooLarge."""
    if not data:
        raise EmptyBody("the request body is empty; send the image bytes")
    with _decode_errors():
        image = _pil_open(io.BytesIO(data), formats=_FORMATS)
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage(f"image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
        if image.getexif().get(0x0112, 1) in _ROTATED:
            width, height = height, width
        # Counting frames reads the container (GIF: skips through its blocks), never decodes them.
        return Source(image, width, height, max(1, int(getattr(image, "n_frames", 1))))


def decode(source: Source, *, scale: int = 1) -> DecodedImage:
    """Decode `source`, reduced by `scale` (from `Source.scale_for`; 1: full resolution)."""
    image = source.image
    with _decode_errors():
        if scale > 1:
            stored = image.size
            drafted = image.draft(None, (stored[0] // scale, stored[1] // scale))
            # draft() answers the box in reduced pixels: (0, 0, width / scale, height / scale).
            scale = round(stored[0] / drafted[1][2]) if drafted else 1
        image.load()
        # In place: exif_transpose otherwise copies the whole decoded image even when nothing turns.
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_rgb_array(image)
    return DecodedImage(rgb, scale, (source.width, source.height))


def decode_image(data: bytes, *, max_pixels: int, min_side: int = 0) -> DecodedImage:
    """Open and decode at the smallest DCT scale that keeps `min_side` pixels (0: full resolution)."""
    source = open_image(data, max_pixels=max_pixels)
    return decode(source, scale=source.scale_for(min_side))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """(h, w, 3) uint8; closes `image`. At most one full-size temporary besides the result."""
    mode = image.mode
    if mode in ("RGB", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image)
        image.close()
        if mode == "RGB":
            return np.ascontiguousarray(values)
        rgb = np.empty((*values.shape[:2], 3), dtype=np.uint8)
        gray = rgb[:, :, 0]
        if mode == "L":
            gray[...] = values
        elif mode.startswith("I;16"):
            # 16 -> 8 bits by the top byte, as OpenCV's imread does (Pillow's convert would clip).
            np.right_shift(values, 8, out=gray, casting="unsafe")
        else:
            # 32-bit integer or float grayscale: scale the image's own range, in float32.
            top = max(float(values.max()), 1.0)
            scaled = np.multiply(values, np.float32(255.0 / top), dtype=np.float32)
            np.clip(scaled, 0, 255, out=scaled)
            gray[...] = scaled
            del scaled
        del values
        rgb[:, :, 1] = gray
        rgb[:, :, 2] = gray
        return rgb
    # P, PA, LA, RGBA, CMYK, YCbCr, 1: Pillow's conversion to RGB drops alpha like OpenCV does, and
    # takes a palette's colours directly (no RGBA intermediate).
    converted = image.convert("RGB")
    image.close()
    rgb = np.asarray(converted)
    converted.close()
    return np.ascontiguousarray(rgb)


@contextmanager
def _decode_errors() -> Iterator[None]:
    """Pillow's many exception types -> our structured errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (ImageTooLarge, InvalidImage):
        raise
    except UnidentifiedImageError:
        raise InvalidImage(f"the body is not an image in a supported format ({_FORMAT_NAMES})") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Truncated or corrupt data: Pillow raises OSError ("image file is truncated") and friends.
        raise InvalidImage(f"the image could not be decoded: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
