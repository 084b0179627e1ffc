"""An in-process moto server (ThreadedMotoServer) as this process's AWS, for the deploy flows.

In process, so the one moto 5.2 gap that matters here can be filled: a change set's execution
updates the stack's resources but not its Outputs (`ChangeSet.apply` never rebuilds the output map;
`create_stack`/`update_stack` do). The fixture adds that rebuild to moto; nothing of ours is replaced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.cloudformation import models as cfn_models
from moto.server import ThreadedMotoServer

from batch.local.moto_server import FAKE_CREDENTIALS, REGION
from batch.local.ports import free_port


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Yields a client factory; `batch.aws.client` reaches the same server through AWS_ENDPOINT_URL."""
    original_apply = cfn_models.ChangeSet.apply

    def apply_and_refresh_outputs(self: Any) -> None:
        original_apply(self)
        self.stack.template = self.template  # a CREATE change set's stack starts from an empty template
        self.stack._parse_template()
        self.stack.output_map = self.stack._create_output_map()

    monkeypatch.setattr(cfn_models.ChangeSet, "apply", apply_and_refresh_outputs)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for name, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": url}.items():
        monkeypatch.setenv(name, value)

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=url, region_name=REGION)

    try:
        yield client
    finally:
        server.stop()
