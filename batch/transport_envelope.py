"""The images-mode transport envelope: how the container hands the finaliser a result *and* its
annotated JPEG in one Batch Transform response, without the JPEG being part of the published result.

    {"record":{...PoseResult...},"annotated_jpeg_base64":"<base64>"}

Written by the container (`batch.transform_handler`, `POSE_EMBED_ANNOTATED=true`), read by the
finaliser (`batch.transform.finalize`) from the job's `.out` file. The record comes first and the
base64 last, so the reader parses the small record and then streams the JPEG out in fixed-size chunks:
a 20 MB annotated image never sits in the finaliser's memory whole. Standard library only (the
Lambda zip carries it).
"""

from __future__ import annotations

import binascii
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PREFIX = b'{"record":'
_IMAGE_FIELD = b',"annotated_jpeg_base64":"'
MAX_RECORD_BYTES = 8 * 1024 * 1024  # a record (300 persons x 17 keypoints) is ~150 KB; anything past this is junk
CHUNK = 256 * 1024  # multiple of 4: base64 decodes chunk by chunk


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope (or record); the message says how."""


def encode(record_json: bytes, jpeg: bytes | None) -> bytes:
    """The envelope for one image: the record (already JSON) and, if any, its annotated JPEG."""
    if jpeg is None:
        return PREFIX + record_json + b"}"
    return PREFIX + record_json + _IMAGE_FIELD + binascii.b2a_base64(jpeg, newline=False) + b'"}'


@dataclass
class Opened:
    """A `.out` body read as far as its record: `record` is the parsed record (an envelope's record, or
    a plain JSON object such as an error record); `jpeg` streams the annotated JPEG, if there is one."""

    record: Any
    jpeg: io.BufferedReader | None


def open_body(chunks: Iterator[bytes]) -> Opened:
    """Parse a `.out` body given as byte chunks, reading only as far as the record."""
    buffer = bytearray()
    source = iter(chunks)
    exhausted = False

    def more() -> bool:
        nonlocal exhausted
        for chunk in source:
            if chunk:
                buffer.extend(chunk)
                if len(buffer) > MAX_RECORD_BYTES + len(PREFIX) + len(_IMAGE_FIELD):
                    raise EnvelopeError(f"the record is larger than {MAX_RECORD_BYTES} bytes")
                return True
        exhausted = True
        return False

    while len(buffer) < len(PREFIX) and more():
        pass
    if not buffer.startswith(PREFIX):
        while more():  # a plain record (an error record): small, read whole within the cap
            pass
        return Opened(_loads(bytes(buffer)), None)
    while True:
        parsed = _record(buffer)
        # Enough bytes after the record to know what follows it, or nothing more to read.
        if parsed is not None and (len(buffer) - parsed[1] >= len(_IMAGE_FIELD) or exhausted):
            record, tail_start = parsed
            break
        if exhausted:
            raise EnvelopeError("the envelope's record is not valid JSON")
        more()
    rest = bytes(buffer[tail_start:])
    if rest.startswith(_IMAGE_FIELD):
        # Buffered: `read(n)` then returns n bytes (a raw stream returns what one chunk decodes to), which
        # is what S3 uploads of an unknown length need to cut 5 MiB parts rather than read it all.
        return Opened(record, io.BufferedReader(Base64Stream(rest[len(_IMAGE_FIELD) :], source), CHUNK))
    if rest.strip() == b"}":
        return Opened(record, None)
    raise EnvelopeError("unexpected content after the envelope's record")


def _record(buffer: bytearray) -> tuple[Any, int] | None:
    """The record and the byte offset just after it, once the buffer holds all of it."""
    # "replace": a chunk may end inside a UTF-8 character; that can only be after a complete record.
    text = buffer[len(PREFIX) :].decode("utf-8", errors="replace")
    try:
        record, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        return None
    return record, len(PREFIX) + len(text[:end].encode())


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None


class Base64Stream(io.RawIOBase):
    """A readable file of the decoded JPEG, fed by the rest of the `.out` body: base64 up to the closing
    `"}`. Invalid base64 or a missing end raises `EnvelopeError` from `read`."""

    def __init__(self, head: bytes, source: Iterator[bytes]) -> None:
        self._text = bytearray(head)
        self._source = source
        self._ended = False
        self._decoded = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        while not self._decoded and not (self._ended and not self._text):
            self._fill()
        n = min(len(view), len(self._decoded))
        view[:n] = self._decoded[:n]
        del self._decoded[:n]
        return n

    def _fill(self) -> None:
        end = self._text.find(b'"')
        if end >= 0:
            tail = bytearray(self._text[end:])
            for chunk in self._source:  # only `"}` may follow: stop reading as soon as more came
                tail.extend(chunk)
                if len(tail) > 64:
                    break
            if tail.strip() != b'"}':
                raise EnvelopeError("unexpected content after the annotated JPEG")
            data, self._text, self._ended = bytes(self._text[:end]), bytearray(), True
        elif len(self._text) >= CHUNK:
            data = bytes(self._text[:CHUNK])
            del self._text[:CHUNK]
        else:
            more = next(self._source, None)
            if more is None:
                raise EnvelopeError("the annotated JPEG's base64 has no end")
            self._text.extend(more)
            return
        try:
            self._decoded.extend(binascii.a2b_base64(data, strict_mode=True))
        except binascii.Error as exc:
            raise EnvelopeError(f"the annotated JPEG is not base64: {exc}") from None
