"""A test "image" for the local stand-in: the real serving app, watched from outside the product.

`EmbeddedStack(serve_command=OBSERVED_SERVE)` runs this instead of `container/serve serve`, as SageMaker
would run another image. It serves the unchanged app through an ASGI wrapper that reads its orders from
the container's environment (a job's `Environment`, so each job sets its own):

- `OBSERVED_RECORD`: a file to which every `/execution-parameters` answer is appended, one JSON a line;
- `OBSERVED_KILL_AFTER` + `OBSERVED_KILL_MARKER`: SIGKILL this container right after it has sent its
  Nth `/invocations` answer, once per marker file (a restarted container finds the marker and lives),
  as a crashed or OOM-killed instance looks to SageMaker. The marker's existence says the kill happened.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from batch.server.__main__ import inherited_sockets
from batch.server.app import create_app
from batch.settings import Settings

OBSERVED_SERVE = [sys.executable, "-m", "tests.local.observed_container", "serve"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class Observed:
    def __init__(self, app: App, environ: dict[str, str]) -> None:
        self.app = app
        self.record = environ.get("OBSERVED_RECORD")
        self.kill_after = int(environ.get("OBSERVED_KILL_AFTER") or 0)
        self.kill_marker = environ.get("OBSERVED_KILL_MARKER")
        self.answers = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        body: list[bytes] = []

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self._answered(path, b"".join(body))

        await self.app(scope, receive, watching)

    def _answered(self, path: str, body: bytes) -> None:
        if path == "/execution-parameters" and self.record:
            with open(self.record, "ab") as record:
                record.write(body + b"\n")
        if path == "/invocations" and self.kill_after and self.kill_marker:
            self.answers += 1
            if self.answers >= self.kill_after and _claim(self.kill_marker):
                os.kill(os.getpid(), signal.SIGKILL)


def _claim(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def main() -> None:
    settings = Settings.from_env()
    app = Observed(create_app(settings), dict(os.environ))
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    uvicorn.Server(config).run(sockets=inherited_sockets(settings))


if __name__ == "__main__":
    main()
