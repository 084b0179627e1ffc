"""The running local stack's one state file, `<home>/local-stack.json`, through which `--local` commands
in other processes (and other folders) find it. `home` defaults to a per-user folder
(`orchestration_settings.local_stack_home`: $POSEBATCH_LOCAL_HOME, $XDG_STATE_HOME/posebatch or
~/.local/state/posebatch), so any working directory finds the same stack.

    {"environment": {...},   the standard AWS variables that point a client at the stack
     "bucket": ..., "pid": ...,
     "model": {"model_data": ..., "image_uri": ...},           the uploaded model (`local up`)
     "async": {"endpoint_name": ..., "input_uri": ..., ...}}   the async endpoint (`local up`)

Readers get a `ClientFactory` for the stack instead of this process's environment being changed. A
state file whose process is gone, or whose moto port does not answer, is stale and said so.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batch.aws import ClientFactory
from batch.orchestration_settings import LOCAL_HOME, local_stack_home

STATE_FILE_NAME = "local-stack.json"


class LocalStackUnavailable(Exception):
    """No usable local stack: none was started, or the one recorded is gone. The message says what to do."""


def resolve_home(home: str | Path | None) -> Path:
    """`--home` when given, else the per-user default."""
    return Path(home).expanduser().resolve() if home else local_stack_home()


def state_path(home: Path) -> Path:
    return home.resolve() / STATE_FILE_NAME


def write_state(home: Path, **sections: Any) -> Path:
    """Merge `sections` into the state file (created if missing)."""
    path = state_path(home)
    current: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**current, **sections}, indent=2))
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def port_answers(url: str, timeout_s: float = 2.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout_s):
            return True
    except OSError:
        return False


def stale_reason(state: dict[str, Any]) -> str | None:
    """Why a recorded stack cannot be used, or None when it looks alive."""
    pid = state.get("pid")
    if isinstance(pid, int) and not pid_alive(pid):
        return f"its process {pid} has exited without cleaning up (killed, or its terminal closed)"
    endpoint = str((state.get("environment") or {}).get("AWS_ENDPOINT_URL") or "")
    if endpoint and not port_answers(endpoint):
        return f"its local AWS at {endpoint} does not answer"
    return None


def read_state(home: Path) -> dict[str, Any]:
    """The running stack's state; `LocalStackUnavailable` with what to do when there is none."""
    path = state_path(home)
    if not path.exists():
        raise LocalStackUnavailable(
            f"no local stack is running (no {path}); start one in another terminal with `pose-batch local up`"
            f" (it and --local commands use the same folder: --home, or ${LOCAL_HOME})"
        )
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LocalStackUnavailable(
            f"the local stack's state {path} is unreadable ({exc}); restart `pose-batch local up`"
        ) from None
    reason = stale_reason(state)
    if reason is not None:
        raise LocalStackUnavailable(
            f"the local stack recorded in {path} is not running: {reason}. Start it again with `pose-batch local up`"
            " (it replaces the stale file)"
        )
    return state


def read_section(home: Path, name: str) -> dict[str, str]:
    """One section of the running stack's state ({} when it has none)."""
    return dict(read_state(home).get(name) or {})


def stack_clients(home: Path) -> ClientFactory:
    """Clients for the running stack's moto and SageMaker stand-in."""
    return ClientFactory(dict(read_state(home)["environment"]))
