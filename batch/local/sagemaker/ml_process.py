"""Running the image as a training or processing job locally: the /opt/ml layout in a folder (no Docker
here, so the container is `container/serve` run as a process with POSE_ML_ROOT pointing at that folder),
S3 inputs downloaded into it and outputs uploaded from it, as SageMaker's File mode and EndOfJob uploads
do, and the container's log read line by line (MetricDefinitions apply to it).

SageMaker's stop semantics: SIGTERM, then SIGKILL after the grace period; when the container's main process
ends, everything it started ends with it (a container's processes die with it: here, its process group).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batch.local.container import SERVE_SCRIPT
from batch.orchestration_settings import child_process_environment
from batch.s3_listing import list_objects
from batch.s3_uri import S3Uri

IMAGE_ENTRYPOINT = "/opt/program/serve"  # the Dockerfile's ENTRYPOINT
ML_ROOT = "/opt/ml"
STOP_GRACE_S = 120.0  # StopTrainingJob: SIGKILL 120 s after SIGTERM


def image_command(arguments: list[str], entrypoint: list[str] | None, root: Path) -> list[str]:
    """What the image would run: its entry point (or the job's ContainerEntrypoint) and the arguments;
    the image's own entry point is `container/serve` here, paths under /opt/ml move under `root`."""
    command = list(entrypoint) if entrypoint else [IMAGE_ENTRYPOINT]
    command += arguments
    if command[0] == IMAGE_ENTRYPOINT:
        command[0] = str(SERVE_SCRIPT) if SERVE_SCRIPT.exists() else IMAGE_ENTRYPOINT
    return [reroot(part, root) for part in command]


def reroot(value: str, root: Path) -> str:
    if value == ML_ROOT or value.startswith(ML_ROOT + "/"):
        return str(root / value[len(ML_ROOT) :].lstrip("/"))
    return value


def relative_key(key: str, prefix: str) -> str:
    """Where SageMaker puts an object of an S3Prefix input: its key below the prefix's folder."""
    if not prefix or prefix.endswith("/"):
        return key[len(prefix) :]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    return key[len(prefix.rpartition("/")[0]) + 1 :] if "/" in prefix else key


def download(s3: Any, uri: str, into: Path) -> int:
    """Every object under the S3 prefix, into `into`, keeping relative keys; returns how many."""
    source = S3Uri.parse(uri, allow_empty_key=True)
    count = 0
    for obj in list_objects(s3, source.bucket, source.key):
        key = str(obj["Key"])
        rel = relative_key(key, source.key)
        if not rel or key.endswith("/"):
            continue
        target = (into / rel).resolve()
        if into.resolve() not in target.parents:
            raise ValueError(f"the S3 key {key} would land outside {into}")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(source.bucket, key, str(target))
        count += 1
    into.mkdir(parents=True, exist_ok=True)
    return count


def upload(s3: Any, folder: Path, uri: str) -> int:
    """Every file under `folder` to the S3 prefix, keeping relative paths; returns how many."""
    target = S3Uri.parse(uri, allow_empty_key=True)
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), target.bucket, target.prefix + path.relative_to(folder).as_posix())
        count += 1
    return count


def tar_folder(folder: Path, archive: Path) -> Path:
    """`folder`'s contents at the archive's root, as SageMaker packs /opt/ml/model."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


class MetricCatcher:
    """MetricDefinitions applied to each log line: the latest value of each metric, with its time."""

    def __init__(self, definitions: list[dict[str, str]]) -> None:
        self._patterns = [(str(d["Name"]), re.compile(str(d["Regex"]))) for d in definitions or []]
        self.latest: dict[str, tuple[float, float]] = {}

    def feed(self, line: str) -> None:
        for name, pattern in self._patterns:
            found = pattern.search(line)
            if found and found.groups():
                try:
                    self.latest[name] = (float(found.group(1)), time.time())
                except ValueError:
                    continue

    def final(self) -> list[dict[str, Any]]:
        return [{"MetricName": n, "Value": v, "Timestamp": t} for n, (v, t) in sorted(self.latest.items())]


class JobProcess:
    """The container's main process, in its own process group, its output teed into a log file."""

    def __init__(
        self, command: list[str], *, environment: dict[str, str], log_path: Path, on_line: Callable[[str], None]
    ) -> None:
        self.command = command
        self.log_path = log_path
        self._env = child_process_environment(environment, path_first=str(Path(sys.executable).parent))
        self._on_line = on_line
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> JobProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            self.command,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="job-log", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with self.log_path.open("a") as log, self._process.stdout as output:
            for line in output:
                log.write(line)
                log.flush()
                self._on_line(line.rstrip("\n"))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def wait(self, deadline: float | None, stop: threading.Event) -> int | None:
        """The exit code; None when `stop` was set or the deadline passed first (the caller stops it)."""
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                self._finish()
                return code
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return None
            stop.wait(0.2)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM to the main process, SIGKILL to the whole group after `grace_s` (or once it exits)."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=grace_s)
        self._finish()
        return self._process.returncode if self._process.returncode is not None else -signal.SIGKILL

    def _finish(self) -> None:
        """The container is gone: so is every process it started."""
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        if self._process.poll() is None:
            self._process.wait()
        if self._reader is not None:
            self._reader.join(10)
