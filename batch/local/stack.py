"""The embedded local stack, wired in one place: moto (S3, SNS, SQS, EventBridge, SSM, and the model
registry's storage) in server mode on loopback, the SageMaker stand-in on its own loopback port (transform
jobs, endpoints of every kind, the model registry), and the Lambda stand-ins (SQS pollers).

Clients reach it through the standard endpoint variables (`AWS_ENDPOINT_URL`,
`AWS_ENDPOINT_URL_SAGEMAKER`, `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`), given explicitly: to containers
as their environment, to this process's code as `stack.client`, to `--local` commands in other
processes through the state file (`batch.local.state`). Nothing writes this process's environment.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from batch import aws
from batch.local.moto_server import REGION, MotoServer
from batch.local.ports import listening_socket, wait_http_ok
from batch.local.sagemaker.api import LocalSageMaker
from batch.local.sqs_poller import LambdaHandler, SqsLambdaPoller
from batch.local.state import state_path, write_state
from batch.orchestration_settings import DEFAULT_MODEL_PACKAGE_GROUP

if TYPE_CHECKING:
    from batch.local.sagemaker.endpoint_service import Endpoints
    from batch.local.sagemaker.model_registry_service import ModelRegistry
    from batch.local.sagemaker.pipeline_service import PipelineService
    from batch.local.sagemaker.processing_job_service import ProcessingJobService
    from batch.local.sagemaker.training_job_service import TrainingJobService
    from batch.local.sagemaker.transform_job_service import TransformJobService

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "posebatch-local"
DEFAULT_HOME = Path(".posebatch")


class EmbeddedStack:
    def __init__(
        self,
        home: Path = DEFAULT_HOME,
        *,
        bucket: str = DEFAULT_BUCKET,
        serve_command: list[str] | None = None,
        model_package_group: str = DEFAULT_MODEL_PACKAGE_GROUP,
    ) -> None:
        """`serve_command`: what every container of this stack runs, as SageMaker runs a model's image
        (None: `container/serve serve`); it must serve on the inherited socket `POSE_LISTEN_FD` names (its
        port, SAGEMAKER_BIND_TO_PORT, is held by that socket). `model_package_group`: the stack's group,
        whose approvals deploy."""
        self.home = home.resolve()
        self.serve_command = serve_command
        self.bucket = bucket
        self.model_package_group = model_package_group
        self.region = REGION
        self.moto = MotoServer()
        self.sagemaker = LocalSageMaker(region=self.region)
        self._sagemaker_socket = listening_socket()  # the port is held from now on, not only once served
        self.sagemaker_port = int(self._sagemaker_socket.getsockname()[1])
        self.sagemaker_url = f"http://127.0.0.1:{self.sagemaker_port}"
        self.pollers: list[SqsLambdaPoller] = []
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        # The stand-in's services, held by the stack they serve (set by `start`).
        self.transform_jobs: TransformJobService | None = None
        self.endpoints: Endpoints | None = None
        self.registry: ModelRegistry | None = None
        self.training_jobs: TrainingJobService | None = None
        self.processing_jobs: ProcessingJobService | None = None
        self.pipelines: PipelineService | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What a process needs to talk to this stack instead of AWS."""
        return {
            **self.moto.environment,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker_url,
        }

    @property
    def state_file(self) -> Path:
        return state_path(self.home)

    def client(self, service: str) -> Any:
        return aws.ClientFactory(self.environment)(service)

    def start(self) -> EmbeddedStack:
        # Feature modules import the stack; import them here to keep the dependency one-way.
        from batch.local.sagemaker import (
            endpoint_service,
            model_registry_service,
            pipeline_service,
            processing_job_service,
            training_job_service,
            transform_job_service,
        )

        self.home.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        self._start_sagemaker_api()
        self.client("s3").create_bucket(Bucket=self.bucket)
        self.transform_jobs = transform_job_service.install(self)
        self.endpoints = endpoint_service.install(self)
        self.registry = model_registry_service.install(self, self.model_package_group)
        self.training_jobs = training_job_service.install(self)
        self.processing_jobs = processing_job_service.install(self)
        self.pipelines = pipeline_service.install(self)
        self.state_file.unlink(missing_ok=True)  # a stale one from a stack that was killed
        write_state(
            self.home,
            environment=self.environment,
            bucket=self.bucket,
            pid=os.getpid(),
            registry={"group": self.model_package_group},
        )
        return self

    def add_sqs_lambda(
        self,
        queue_name: str,
        handler: LambdaHandler,
        *,
        batch_size: int = 10,
        attributes: dict[str, str] | None = None,
        concurrency: int = 1,
    ) -> str:
        """Create a queue and poll it into `handler` (Lambda's SQS event source, at most `concurrency`
        batches at once); returns its ARN (`queue_url` gives its URL)."""
        sqs = self.client("sqs")
        queue_attributes = {"VisibilityTimeout": "60", **(attributes or {})}
        queue_url = sqs.create_queue(QueueName=queue_name, Attributes=queue_attributes)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        poller = SqsLambdaPoller(
            sqs, queue_url, queue_arn, handler, batch_size=batch_size, name=queue_name, concurrency=concurrency
        )
        self.pollers.append(poller.start())
        return str(queue_arn)

    def queue_url(self, queue_name: str) -> str:
        return str(self.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"])

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.sagemaker.shutdown()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sagemaker_socket.close()
        self.moto.stop()
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start_sagemaker_api(self) -> None:
        config = uvicorn.Config(
            self.sagemaker.app, host="127.0.0.1", port=self.sagemaker_port, log_level="warning", lifespan="off"
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, args=([self._sagemaker_socket],), name="local-sagemaker", daemon=True
        )
        self._thread.start()
        wait_http_ok(f"{self.sagemaker_url}/docs", timeout_s=30)
