"""moto in server mode on loopback, as its own process (so it never competes for our GIL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from types import TracebackType
from typing import Any

import boto3

from batch.local.ports import listening_socket, wait_http_ok

REGION = "us-east-1"
# moto accepts any credentials; fixed fake ones keep a stray real profile from ever being used.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


class MotoServer:
    """`with MotoServer() as moto: s3 = moto.client("s3")`; child processes get `moto.environment`."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = listening_socket()  # held until the server process inherits it
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What another process needs to use this server as its AWS."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def start(self, timeout_s: float = 30.0) -> MotoServer:
        if self._socket is None:
            raise RuntimeError("this moto server was started once already")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "batch.local.moto_process", str(self._socket.fileno())],
                env={**os.environ, "MOTO_PORT": str(self.port)},  # moto writes it into some URLs it returns
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(self._socket.fileno(),),
            )
        finally:
            self._socket.close()
            self._socket = None
        try:
            wait_http_ok(f"{self.url}/moto-api/data.json", timeout_s=timeout_s)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._socket is not None:  # never started
            self._socket.close()
            self._socket = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
