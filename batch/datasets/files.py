"""A dataset's files wherever they are: a local folder or an S3 prefix, as relative POSIX paths. The
checks read only the small files (the yaml, the JSON, the label rows); images are only listed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from batch.s3_listing import list_keys
from batch.s3_uri import S3Uri

READ_CONCURRENCY = 16


class DatasetFiles(Protocol):
    location: str  # for messages: the folder or the s3:// prefix

    def names(self) -> list[str]: ...
    def is_dir(self, rel: str) -> bool: ...
    def read_bytes(self, rel: str) -> bytes: ...
    def read_many(self, rels: Iterable[str]) -> Iterator[tuple[str, bytes]]: ...


class LocalFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def is_dir(self, rel: str) -> bool:
        return (self.root / rel).is_dir()

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def read_many(self, rels: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        for rel in rels:
            yield rel, self.read_bytes(rel)


class S3Files:
    def __init__(self, s3: Any, prefix: S3Uri) -> None:
        self.s3 = s3
        self.prefix = prefix
        self.location = f"s3://{prefix.bucket}/{prefix.prefix}"
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = list_keys(self.s3, self.prefix)
        return self._names

    def is_dir(self, rel: str) -> bool:
        """S3 has no folders: a prefix under which something exists."""
        prefix = rel.rstrip("/") + "/" if rel else ""
        return any(name.startswith(prefix) for name in self.names())

    def read_bytes(self, rel: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.prefix.bucket, Key=self.prefix.prefix + rel)["Body"].read()
        return body

    def read_many(self, rels: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """In order, fetched concurrently (label files are many and small)."""
        wanted = list(rels)
        with ThreadPoolExecutor(READ_CONCURRENCY) as pool:
            yield from zip(wanted, pool.map(self.read_bytes, wanted), strict=True)


def open_files(location: str, s3: Any | None = None) -> DatasetFiles:
    """The dataset at a local folder or an s3:// prefix (`s3` must then be given)."""
    if location.startswith("s3://"):
        if s3 is None:
            raise ValueError("an S3 client is needed for an s3:// dataset")
        return S3Files(s3, S3Uri.parse(location, allow_empty_key=True))
    return LocalFiles(Path(location).expanduser())
