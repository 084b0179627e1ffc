"""What SageMaker does behind an asynchronous endpoint, for the local stand-in: a queue of accepted
requests, `MaxConcurrentInvocationsPerInstance` workers per instance, the input read from S3, the
container called with `InvocationTimeoutSeconds`, the response (or the error body) written to the
output (or failure) location, and a notification in AWS's message shape published to SNS.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from batch.local.container import InvocationFailed, ServingContainer, invoke
from batch.local.sagemaker.instance_supervisor import Instance, InstanceSupervisor
from batch.s3_uri import S3Uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AsyncRequest:
    inference_id: str
    endpoint_name: str
    input_location: str
    content_type: str
    accept: str | None
    custom_attributes: str | None
    output_location: str
    failure_location: str
    invocation_timeout_s: int
    request_ttl_s: int
    received_at: float


@dataclass(frozen=True)
class Notification:
    """`AsyncInferenceConfig.OutputConfig.NotificationConfig`."""

    success_topic: str | None
    error_topic: str | None

    @classmethod
    def from_config(cls, output_config: dict[str, Any]) -> Notification:
        config = output_config.get("NotificationConfig") or {}
        return cls(config.get("SuccessTopic"), config.get("ErrorTopic"))


class _Failed(Exception):
    """An invocation that ends in the failure location: a reason and the body to store there."""

    def __init__(self, reason: str, body: bytes, content_type: str = "text/plain") -> None:
        super().__init__(reason)
        self.reason = reason
        self.body = body
        self.content_type = content_type


class _NotDelivered(Exception):
    """The container refused the connection: the request never reached it and goes back to the queue."""


class RequestQueue:
    """An endpoint's accepted requests. It belongs to the endpoint, not to its instances: when an update
    replaces the instances, the new ones take over the queue and nothing accepted is lost."""

    def __init__(self) -> None:
        self._queue: queue.Queue[AsyncRequest] = queue.Queue()
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, request: AsyncRequest) -> bool:
        """Queue a request; False when the same inference id is already queued or running."""
        with self._lock:
            if request.inference_id in self._active:
                return False
            self._active.add(request.inference_id)
        self._queue.put(request)
        return True

    def take(self, timeout_s: float) -> AsyncRequest:
        """The next request (queue.Empty after `timeout_s`)."""
        return self._queue.get(timeout=timeout_s)

    def put_back(self, request: AsyncRequest) -> None:
        """A request that never reached a container: still accepted, it waits for a healthy instance."""
        self._queue.put(request)

    def finished(self, inference_id: str) -> None:
        with self._lock:
            self._active.discard(inference_id)

    def size(self) -> int:
        return self._queue.qsize()


class AsyncRunner:
    def __init__(
        self,
        *,
        endpoint_name: str,
        containers: list[ServingContainer],
        max_concurrent_per_instance: int,
        notification: Notification,
        s3: Any,
        sns: Any,
        region: str,
        requests: RequestQueue | None = None,
    ) -> None:
        """`requests`: the endpoint's queue when these instances replace others (an update), else a new one."""
        self.endpoint_name = endpoint_name
        self._notification = notification
        self._s3 = s3
        self._sns = sns
        self._region = region
        self.requests = requests or RequestQueue()
        self.max_concurrent_per_instance = max_concurrent_per_instance
        self._stop = threading.Event()
        self.instances = [Instance(i, container) for i, container in enumerate(containers)]
        self.supervisor = InstanceSupervisor(endpoint_name, self.instances, self.requests.size)
        self._threads = [
            threading.Thread(target=self._work, args=(instance,), name=f"{endpoint_name}-{i}-{slot}", daemon=True)
            for i, instance in enumerate(self.instances)
            for slot in range(max_concurrent_per_instance)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, request: AsyncRequest) -> bool:
        """Queue a request; False when the same inference id is already queued or running."""
        return self.requests.submit(request)

    @property
    def backlog(self) -> int:
        """Requests accepted and not yet handed to a container."""
        return self.requests.size()

    def stop(self) -> None:
        self._stop.set()
        self.supervisor.stop()
        for thread in self._threads:
            thread.join(5)

    def drain(self, timeout_s: float) -> None:
        """Take no more requests and wait (up to `timeout_s`) for those in flight to finish: what an
        update does to the instances it replaces. The queue stays with the endpoint."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.supervisor.stop()

    def _work(self, instance: Instance) -> None:
        while not self._stop.is_set():
            # Only a healthy instance takes requests: the rest wait in the queue for its replacement.
            if not instance.healthy.wait(0.5):
                continue
            try:
                request = self.requests.take(timeout_s=0.5)
            except queue.Empty:
                continue
            done = True
            try:
                self._process(instance.container, request)
            except _NotDelivered:
                done = False
                self.supervisor.report_unreachable(instance)
                self.requests.put_back(request)
            except Exception:
                log.exception("async request %s could not be completed", request.inference_id)
            finally:
                if done:
                    self.requests.finished(request.inference_id)

    def _process(self, container: ServingContainer, request: AsyncRequest) -> None:
        try:
            if time.time() - request.received_at > request.request_ttl_s:
                raise _Failed("Request expired: it waited longer than RequestTTLSeconds", b"Request expired")
            content_type, body = self._invoke(container, request, self._read_input(request))
        except _Failed as failed:
            self._put(request.failure_location, failed.body, failed.content_type)
            self._publish_error(request, failed.reason)
            return
        self._put(request.output_location, body, content_type)
        self._publish_success(request, content_type)

    def _read_input(self, request: AsyncRequest) -> bytes:
        source = S3Uri.parse(request.input_location)
        try:
            return bytes(self._s3.get_object(Bucket=source.bucket, Key=source.key)["Body"].read())
        except Exception as exc:
            message = f"ClientError: Unable to read the input location {request.input_location}: {exc}"
            raise _Failed(message, message.encode()) from None

    def _invoke(self, container: ServingContainer, request: AsyncRequest, payload: bytes) -> tuple[str, bytes]:
        headers = {
            "Content-Type": request.content_type,
            "X-Amzn-SageMaker-Inference-Id": request.inference_id,
        }
        if request.accept:
            headers["Accept"] = request.accept
        if request.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = request.custom_attributes
        try:
            answer = invoke(container.url, payload, headers, timeout_s=request.invocation_timeout_s)
            return answer.content_type, answer.body
        except InvocationFailed as exc:
            if exc.kind == "unreachable" and "refused" in exc.detail.lower():
                raise _NotDelivered(exc.detail) from None
            if exc.kind in ("client", "server"):
                reason = (
                    f"ClientError: Received {exc.kind} error ({exc.status}) from primary with message "
                    f'"{exc.detail[:500]}". See the container log for more information.'
                )
                raise _Failed(reason, exc.body, exc.content_type) from None
            if exc.kind == "timeout":
                message = f"Inference timed out after {request.invocation_timeout_s}s (InvocationTimeoutSeconds)"
            else:
                message = f"ServerError: the model container did not answer: {exc.detail}"
            raise _Failed(message, message.encode()) from None

    def _put(self, location: str, body: bytes, content_type: str) -> None:
        target = S3Uri.parse(location)
        self._s3.put_object(Bucket=target.bucket, Key=target.key, Body=body, ContentType=content_type)

    def _base_message(self, request: AsyncRequest, status: str) -> dict[str, Any]:
        return {
            "awsRegion": self._region,
            "eventTime": _iso(time.time()),
            "receivedTime": _iso(request.received_at),
            "invocationStatus": status,
            "requestParameters": {
                "contentType": request.content_type,
                "endpointName": request.endpoint_name,
                "inputLocation": request.input_location,
            },
            "inferenceId": request.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }

    def _publish_success(self, request: AsyncRequest, content_type: str) -> None:
        message = self._base_message(request, "Completed")
        message["responseParameters"] = {
            "contentType": content_type,
            "outputLocation": request.output_location,
        }
        self._publish(self._notification.success_topic, message)

    def _publish_error(self, request: AsyncRequest, reason: str) -> None:
        message = self._base_message(request, "Failed")
        message["failureReason"] = reason
        message["failureLocation"] = request.failure_location
        self._publish(self._notification.error_topic, message)

    def _publish(self, topic: str | None, message: dict[str, Any]) -> None:
        if topic:
            self._sns.publish(TopicArn=topic, Message=json.dumps(message))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
