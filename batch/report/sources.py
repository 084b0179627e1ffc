"""Where a job's outputs live, read in one streaming pass: a local folder or an S3 prefix.

Two layouts are understood:

    mirrored (Batch Transform, async prefix submissions, `predict`, a downloaded copy of any):
        <root>/keypoints/<rel>.json      result or error record
        <root>/annotated/<rel>           annotated JPEG
        <root>/keypoints/<rel>.jsonl     a video's header and frame lines, or its error record
        <root>/annotated/<rel>[.mp4]     its annotated MP4
        <root>/_SUMMARY.json             the job's summary (Batch Transform)
    flat (`pose-batch predict --out DIR`):
        <root>/<name>.json               result
        <root>/<name>.error.json         error record
        <root>/<stem>.jpg                annotated JPEG

Records are yielded as `(rel, raw bytes)` in listing order; S3 is listed page by page (1,000 keys) and each
page's bodies are fetched concurrently, so neither the key list nor the records are ever held whole. A
video's JSON Lines are yielded line by line as they are read (`videos`), never whole.

What a report reads is named by the outputs themselves (record keys, the summary's `input`), which anyone
who can write under the output prefix controls: local files are read only when they are regular files of
bounded size (never a FIFO or a device), only at relative paths without `..` or a leading `/`, and a
summary's `input` is used only when it is an `s3://` prefix (`build_report`), never a local folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from batch.errors import error_record
from batch.output_layout import annotated_key
from batch.regular_file import open_regular_file, read_regular_file
from batch.s3_uri import S3Uri

SUMMARY_NAME = "_SUMMARY.json"
REPORT_NAME = "_REPORT.html"
KEYPOINTS = "keypoints/"
ERROR_SUFFIX = ".error.json"
VIDEO_SUFFIX = ".jsonl"
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # a thumbnail (or a summary) never reads a larger object
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a keypoint record is at most a few MB (3,000 persons)

InputReader = Callable[[str], "bytes | None"]


class OutputSource(Protocol):
    """A job's outputs: records to stream, images to sample, and where the report goes."""

    location: str

    def records(self) -> Iterator[tuple[str, bytes]]: ...
    def videos(self) -> Iterator[tuple[str, Iterator[bytes]]]: ...
    def annotated(self, rel: str) -> bytes | None: ...
    def annotated_start(self, rel: str, size: int) -> bytes | None: ...
    def summary(self) -> dict[str, Any] | None: ...
    def write_report(self, html: bytes) -> str: ...


def _record_rel(name: str) -> str | None:
    """The image's relative key for a record file name, None for anything that is not a record."""
    if name.endswith(ERROR_SUFFIX):
        return name[: -len(ERROR_SUFFIX)]
    if name.endswith(".json") and name != SUMMARY_NAME:
        return name[: -len(".json")]
    return None


class LocalSource:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"not a folder: {root}")
        self.root = root
        self.location = str(root.resolve())
        self.mirrored = (root / KEYPOINTS).is_dir()

    def records(self) -> Iterator[tuple[str, bytes]]:
        if not self.mirrored:
            for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
                rel = _record_rel(entry.name) if entry.is_file() else None
                if rel is not None:
                    yield rel, _read_record(Path(entry.path))
            return
        base = self.root / KEYPOINTS
        for directory, folders, files in os.walk(base):
            folders.sort()  # one directory's names at a time: deterministic order, bounded memory
            for name in sorted(files):
                if name.endswith(".json"):
                    path = Path(directory, name)
                    yield path.relative_to(base).as_posix()[: -len(".json")], _read_record(path)

    def videos(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        if not self.mirrored:
            return
        base = self.root / KEYPOINTS
        for directory, folders, files in os.walk(base):
            folders.sort()
            for name in sorted(files):
                if name.endswith(VIDEO_SUFFIX):
                    path = Path(directory, name)
                    yield path.relative_to(base).as_posix()[: -len(VIDEO_SUFFIX)], _file_lines(path)

    def annotated(self, rel: str) -> bytes | None:
        if not is_contained(rel):
            return None
        path = self.root / annotated_key(rel) if self.mirrored else (self.root / rel).with_suffix(".jpg")
        return read_local_file(path)

    def annotated_start(self, rel: str, size: int) -> bytes | None:
        if not is_contained(rel):
            return None
        try:
            with open_regular_file(self.root / annotated_key(rel)) as file:
                return file.read(size)
        except OSError:
            return None

    def summary(self) -> dict[str, Any] | None:
        return _parse_summary(read_local_file(self.root / SUMMARY_NAME))

    def write_report(self, html: bytes) -> str:
        # Written beside and renamed over: a link planted at _REPORT.html is replaced, never written through.
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".report-", suffix=".tmp", delete=False) as file:
            file.write(html)
        target = self.root / REPORT_NAME
        os.chmod(file.name, 0o644)
        os.replace(file.name, target)
        return str(target.resolve())


class S3Source:
    def __init__(self, uri: S3Uri, s3: Any, *, workers: int = 16, page_size: int = 1000) -> None:
        self.uri = S3Uri(uri.bucket, uri.prefix)
        self.location = str(self.uri)
        self.s3 = s3
        self.workers = workers
        self.page_size = page_size  # keys listed (and records held) at a time

    def records(self) -> Iterator[tuple[str, bytes]]:
        prefix = self.uri.child(KEYPOINTS).key
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.uri.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        with ThreadPoolExecutor(self.workers, thread_name_prefix="report-s3") as pool:
            for page in pages:
                keys = [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
                for key, body in zip(keys, pool.map(self._get, keys), strict=True):
                    if body is not None:
                        yield key[len(prefix) : -len(".json")], body

    def videos(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        prefix = self.uri.child(KEYPOINTS).key
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.uri.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith(VIDEO_SUFFIX):
                    yield key[len(prefix) : -len(VIDEO_SUFFIX)], self._lines(key)

    def _lines(self, key: str) -> Iterator[bytes]:
        try:
            body = self.s3.get_object(Bucket=self.uri.bucket, Key=key)["Body"]
        except Exception:  # gone since the listing: nothing to read
            return
        try:
            yield from body.iter_lines()
        finally:
            body.close()

    def annotated(self, rel: str) -> bytes | None:
        return self._get(self.uri.child(annotated_key(rel)).key)

    def annotated_start(self, rel: str, size: int) -> bytes | None:
        try:
            key = self.uri.child(annotated_key(rel)).key
            response = self.s3.get_object(Bucket=self.uri.bucket, Key=key, Range=f"bytes=0-{size - 1}")
            return bytes(response["Body"].read())
        except Exception:
            return None

    def summary(self) -> dict[str, Any] | None:
        return _parse_summary(self._get(self.uri.child(SUMMARY_NAME).key))

    def write_report(self, html: bytes) -> str:
        target = self.uri.child(REPORT_NAME)
        self.s3.put_object(Bucket=target.bucket, Key=target.key, Body=html, ContentType="text/html; charset=utf-8")
        return str(target)

    def _get(self, key: str) -> bytes | None:
        return read_s3(self.s3, S3Uri(self.uri.bucket, key))


def read_s3(s3: Any, uri: S3Uri) -> bytes | None:
    """The object's bytes; None when it is missing, unreadable or too large for a thumbnail."""
    try:
        response = s3.get_object(Bucket=uri.bucket, Key=uri.key)
        if response.get("ContentLength", 0) > MAX_IMAGE_BYTES:
            response["Body"].close()
            return None
        return bytes(response["Body"].read())
    except Exception:  # a report shows what it can; a missing object is no reason to stop
        return None


def _file_lines(path: Path) -> Iterator[bytes]:
    """A video's record lines; a file that is not regular (a FIFO would hang the report) yields an error
    record line instead, which the video statistics count as the video's error."""
    try:
        file = open_regular_file(path)
    except OSError as exc:
        yield json.dumps(error_record("unreadable_record", f"the record cannot be read: {exc}")).encode()
        return
    with file:
        yield from file


def is_contained(rel: str) -> bool:
    """Whether `rel` stays inside the folder it is joined to: relative, without `..` segments (a record
    key such as `keypoints/../../x.json` or `keypoints//etc/x.json` must not reach outside)."""
    return bool(rel) and not rel.startswith("/") and ".." not in rel.split("/") and "\0" not in rel


def read_local_file(path: Path) -> bytes | None:
    """A regular file's bytes (at most MAX_IMAGE_BYTES); None for anything missing, unreadable, too large
    or not a regular file (a FIFO would hang the report, a link to /dev/zero exhaust its memory)."""
    try:
        return read_regular_file(path, MAX_IMAGE_BYTES)
    except OSError:
        return None


def _read_record(path: Path) -> bytes:
    """A record's bytes; a record that cannot be read becomes an error record saying why, so the report
    counts it as a failure instead of stopping (or hanging) on it."""
    try:
        return read_regular_file(path, MAX_RECORD_BYTES)
    except OSError as exc:
        return json.dumps(error_record("unreadable_record", f"the record cannot be read: {exc}")).encode()


def _parse_summary(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        summary = json.loads(body)
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


def open_source(location: str, *, s3: Any = None, workers: int = 32) -> OutputSource:
    """`s3://bucket/prefix/` or a local folder; `workers` S3 reads in flight (each record is one GET)."""
    if location.startswith("s3://"):
        if s3 is None:
            from batch import aws

            s3 = aws.client("s3", max_pool=max(workers, 10))
        return S3Source(S3Uri.parse(location, allow_empty_key=True), s3, workers=workers)
    return LocalSource(Path(location))


def input_reader(location: str | None, *, s3: Any = None) -> InputReader | None:
    """Reads the input image `<location>/<rel>` (for failure thumbnails), or None when inputs are unknown."""
    if not location:
        return None
    if location.startswith("s3://"):
        root = S3Uri.parse(location, allow_empty_key=True)
        if s3 is None:
            from batch import aws

            s3 = aws.client("s3", max_pool=32)
        client = s3
        return lambda rel: read_s3(client, root.child(rel))
    folder = Path(location)
    return lambda rel: read_local_file(folder / PurePosixPath(rel)) if is_contained(rel) else None
