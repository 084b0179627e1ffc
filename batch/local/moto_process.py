"""`python -m batch.local.moto_process FD`: moto's server, as `python -m moto.server` builds it, serving on
a listening socket inherited from the stack (`batch.local.ports.listening_socket`), so that the port
cannot be taken by another process between being chosen and being served."""

from __future__ import annotations

import signal
import sys
from typing import Any

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def _exit(_signum: int, _frame: Any) -> None:
    sys.exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m batch.local.moto_process FD", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler, fd=int(argv[0]))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
