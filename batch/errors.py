"""One error base class: an HTTP status, a stable machine-readable code and a public message.

The internal detail (exception chain, stack trace) is logged by whoever catches it and never
returned to the caller.
"""

from __future__ import annotations

from typing import ClassVar


def error_record(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one error record (`schema.ErrorRecord`): what a bad input gets instead of a result.

    Plain dicts, so the Lambda handlers write it without pydantic; `tests/test_schema.py` checks it
    validates as `schema.ErrorRecord`, the model readers parse it with."""
    return {"error": {"code": code, "message": message}}


class PoseError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return error_record(self.code, self.message)


class EmptyBody(PoseError):
    code = "empty_body"


class InvalidImage(PoseError):
    code = "invalid_image"


class ImageTooLarge(PoseError):
    status = 413
    code = "image_too_large"


class InvalidVideo(PoseError):
    """A 0-byte file, a non-video, a container without a video stream, or a codec that does not decode."""

    code = "invalid_video"


class VideoTooLarge(PoseError):
    """Refused from the container header, before decoding: too long, or too many pixels per second."""

    status = 413
    code = "video_too_large"


class VideoNotAccepted(PoseError):
    """A video where only images are taken (Batch Transform images mode: one image per request)."""

    status = 415
    code = "video_not_accepted"


class PayloadTooLarge(PoseError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(PoseError):
    status = 415
    code = "unsupported_media_type"


class NotAcceptable(PoseError):
    status = 406
    code = "not_acceptable"


class InvalidAttributes(PoseError):
    code = "invalid_custom_attributes"


class InvalidManifest(PoseError):
    code = "invalid_manifest_line"


class InvalidS3Uri(PoseError, ValueError):
    """Also a ValueError: code outside the server (Lambda handlers, CLIs) treats it as bad input."""

    code = "invalid_s3_uri"


class BucketNotAllowed(PoseError):
    status = 403
    code = "bucket_not_allowed"


class S3ObjectError(PoseError):
    """Reading or writing an S3 object failed (missing object, access denied, network)."""

    status = 424
    code = "s3_error"


class KeyTooLong(PoseError, ValueError):
    """The output locations of an S3 key do not fit in CustomAttributes: no retry can ever help."""

    code = "key_too_long"


class AnnotatedNameTaken(PoseError):
    """Another input keeps this input's annotated name (`a.png.jpg` keeps `annotated/a.png.jpg` from
    `a.png`): refused before inference, so neither output overwrites the other (`batch.output_layout`)."""

    status = 409
    code = "annotated_name_taken"


class ModelNotReady(PoseError):
    status = 503
    code = "model_not_ready"


class ModelLoadError(Exception):
    """The model could not be loaded at start-up: fatal, with a message naming what was tried."""
