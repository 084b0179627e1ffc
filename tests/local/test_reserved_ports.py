"""The local stack's servers get their port as a listening socket, held from the moment it is chosen: no
other process (a parallel test worker's container, say) can take it before the server serves on it. A port
handed over as a number was free until the child bound it, and our `/ping` was once answered by another
worker's container."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from batch.local.container import ServingContainer
from batch.local.moto_server import MotoServer
from batch.local.ports import listening_socket


def can_bind(port: int) -> bool:
    """What another server would try: SO_REUSEADDR, as uvicorn and werkzeug set it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_listening_socket_holds_its_port() -> None:
    sock = listening_socket()
    port = sock.getsockname()[1]
    assert not can_bind(port)
    sock.close()
    assert can_bind(port)


def test_a_container_holds_its_port_before_it_starts(tmp_path: Path) -> None:
    container = ServingContainer(model_dir=tmp_path, environment={}, aws_environment={}, log_path=tmp_path / "log")
    assert not can_bind(container.port)
    container.stop()  # never started: the reservation is given back
    assert can_bind(container.port)


def test_moto_serves_on_the_port_it_held() -> None:
    moto = MotoServer()
    assert not can_bind(moto.port)
    with moto:
        assert moto.client("s3").list_buckets()["Buckets"] == []
        assert not can_bind(moto.port)
    with pytest.raises(RuntimeError, match="started once already"):
        moto.start()
