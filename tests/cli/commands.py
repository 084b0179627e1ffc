"""Running the real `pose-batch` console script in another process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

POSE_BATCH = str(Path(sys.executable).parent / "pose-batch")


def environment(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment with the local stack's folder pinned (never the user's own)."""
    return {**os.environ, "POSEBATCH_LOCAL_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


def pose_batch(*args: str, cwd: Path, env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSE_BATCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def start(*args: str, cwd: Path, env: dict[str, str], stdout_path: Path, stderr_path: Path) -> subprocess.Popen[str]:
    """A long-running command (`local up`, `transform --wait`), its output in files so it never blocks."""
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:  # the child keeps its own copies
        return subprocess.Popen(
            [POSE_BATCH, *args],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,  # its own process group: our signals reach it alone
        )
