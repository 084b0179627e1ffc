"""Reading a local file whose path came from outside (a folder to pose, a job's outputs, a report's
inputs) only when it is a regular file of bounded size: a FIFO would block the reader for ever, a link
to a device such as /dev/zero never ends, and an unbounded read can exhaust memory. Standard library only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

# Opening a FIFO for reading blocks until a writer appears; with O_NONBLOCK it returns at once, and
# fstat() then says what it is. Regular files ignore the flag.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class UnreadableFile(OSError):
    """Not a regular file, or larger than the caller reads; the message says which."""


class FileTooLarge(UnreadableFile):
    """A regular file larger than the caller reads."""


def open_regular_file(path: Path | str, max_bytes: int | None = None) -> BinaryIO:
    """`path` opened for reading (links followed), when it is a regular file of at most `max_bytes` (None:
    any size); `UnreadableFile` otherwise, other `OSError`s as the system raises them."""
    file = open(os.open(path, _OPEN_FLAGS), "rb", closefd=True)  # noqa: SIM115 - returned open
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"not a regular file ({_kind(info.st_mode)}): {path}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FileTooLarge(f"{info.st_size:,} bytes, more than the {max_bytes:,} read: {path}")
    except BaseException:
        file.close()
        raise
    return file


def read_regular_file(path: Path | str, max_bytes: int | None = None) -> bytes:
    """The bytes of `path` (links followed); `UnreadableFile` for anything but a regular file of at most
    `max_bytes` (None: no limit), other `OSError`s as the system raises them."""
    with open_regular_file(path, max_bytes) as file:
        # Bounded even if the file grows after fstat().
        data = file.read(max_bytes + 1) if max_bytes is not None else file.read()
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLarge(f"more than the {max_bytes:,} bytes read: {path}")
    return data


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    return next((name for test, name in kinds.items() if test(mode)), "a socket or special file")
