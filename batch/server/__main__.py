"""`python -m batch.server [serve]`: what `container/serve` runs (SageMaker passes `serve`)."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from pydantic import ValidationError

from batch.errors import ModelLoadError
from batch.inference.model_source import resolve_checkpoint
from batch.server.app import create_app
from batch.settings import Settings

log = logging.getLogger("batch.server")


def inherited_sockets(settings: Settings) -> list[socket.socket] | None:
    """The listening socket the local stack bound for this container (POSE_LISTEN_FD), if any: serve on it
    rather than binding host:port, which the stack holds for us."""
    return None if settings.listen_fd is None else [socket.socket(fileno=settings.listen_fd)]


def main(argv: list[str] | None = None, *, overrides: dict[str, object] | None = None) -> int:
    """`overrides`: settings fields that `pose-batch serve` options replace (by field name)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] != "serve":
        print(f"usage: serve (SageMaker starts the container with `serve`); got {args[0]!r}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env().updated(**(overrides or {}))
        resolve_checkpoint(settings)  # a missing model is a clear error now, not a /ping that never turns 200
    except ValidationError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    except ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    if settings.switch_interval_ms is not None:
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", access_log=False, timeout_keep_alive=75
    )
    server = uvicorn.Server(config)

    def stop_on_failure() -> None:
        server.should_exit = True

    app.state.runtime.on_load_failure = stop_on_failure
    server.run(sockets=inherited_sockets(settings))
    return 1 if app.state.runtime.load_error else 0


if __name__ == "__main__":
    sys.exit(main())
