"""The running local stack's one state file, `<home>/local-stack.json`, through which `--local` commands
in other processes find it:

    {"environment": {...},   the standard AWS variables that point a client at the stack
     "bucket": ..., "pid": ...,
     "model": {"model_data": ..., "image_uri": ...},           the uploaded model (`local up`)
     "async": {"endpoint_name": ..., "input_uri": ..., ...}}   the async endpoint (`local up`)

Readers get a `ClientFactory` for the stack instead of this process's environment being changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batch.aws import ClientFactory

STATE_FILE_NAME = "local-stack.json"


def state_path(home: Path) -> Path:
    return home.resolve() / STATE_FILE_NAME


def write_state(home: Path, **sections: Any) -> Path:
    """Merge `sections` into the state file (created if missing)."""
    path = state_path(home)
    current: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**current, **sections}, indent=2))
    return path


def read_state(home: Path) -> dict[str, Any]:
    """The running stack's state; a clear exit when none runs."""
    path = state_path(home)
    if not path.exists():
        raise SystemExit(f"no local stack is running (no {path}); start one with `pose-batch local up`")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def read_section(home: Path, name: str) -> dict[str, str]:
    """One section of the running stack's state ({} when it has none)."""
    return dict(read_state(home).get(name) or {})


def stack_clients(home: Path) -> ClientFactory:
    """Clients for the running stack's moto and SageMaker stand-in."""
    return ClientFactory(dict(read_state(home)["environment"]))
