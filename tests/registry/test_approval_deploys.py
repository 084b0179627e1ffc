"""Approval deploys, on the local stack with the real container: approving a package of the stack's group
(`pose-batch models approve`) emits SageMaker's state-change event; the approval handler (the Lambda's code,
run by the stack's poller) makes it the default model and rolls the async and real-time endpoints that follow
the group, blue/green, while requests keep coming: none is dropped, and the answers after the roll name the
package's checkpoint. `transform` without a model then runs the package; `submit --model-package` checks
what the endpoint serves. Repeated, stale and unapproved events change nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch.local.sagemaker.async_deployment import LocalAsyncDeployment, deploy_local_endpoint
from batch.polling import poll
from batch.registry import approval, default_model
from batch.registry.packages import ModelPackage
from tests.registry.conftest import ASSETS, BUCKET, RegistryStack

GROUP = "posebatch"  # the stack's group: its approvals deploy
ASYNC_ENDPOINT = "posebatch-async"
REALTIME_ENDPOINT = "posebatch-realtime"


@pytest.fixture(scope="module")
def async_endpoint(registry_stack: RegistryStack) -> LocalAsyncDeployment:
    """The stack's async endpoint, as `local up` deploys it (following the group's approvals)."""
    return deploy_local_endpoint(registry_stack.stack, model_data_url=f"s3://{BUCKET}/models/base/model.tar.gz",
                                 wire_events=False, startup_timeout_s=300)  # fmt: skip


@pytest.fixture(scope="module")
def candidate(registry_stack: RegistryStack) -> ModelPackage:
    return registry_stack.register("candidate.pt", group=GROUP, ap=0.452)


@pytest.fixture(scope="module")
def newer(registry_stack: RegistryStack, approved: dict[str, Any]) -> ModelPackage:
    """A newer version approved behind the rule's back (in moto directly: no event, so no roll): approved,
    yet not what the endpoints serve."""
    package = registry_stack.register("newer.pt", group=GROUP)
    registry_stack.stack.moto.client("sagemaker").update_model_package(
        ModelPackageArn=package.arn, ModelApprovalStatus="Approved"
    )
    return package


class Caller:
    """Calls the real-time endpoint from a thread, five times a second at most; keeps every answer's model or
    error."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self.models: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        body = (ASSETS / "zidane.jpg").read_bytes()
        while not self._stop.is_set():
            try:
                answer = self._runtime.invoke_endpoint(
                    EndpointName=REALTIME_ENDPOINT, Body=body, ContentType="image/jpeg"
                )
                self.models.append(json.loads(answer["Body"].read())["model"])
            except Exception as exc:  # any failure is a dropped request
                self.errors.append(repr(exc))
            self._stop.wait(0.2)  # steady traffic, leaving the two CPUs to the containers starting


def serving(sagemaker: Any, endpoint: str, config: str) -> dict[str, Any] | None:
    described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint)
    return (
        described if (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", config) else None
    )


def async_answer(registry_stack: RegistryStack, inference: str) -> dict[str, Any] | None:
    try:
        body = registry_stack.client("s3").get_object(
            Bucket=BUCKET, Key=f"async/output/_async/responses/{inference}.out"
        )
    except ClientError:  # not there yet
        return None
    answer: dict[str, Any] = json.loads(body["Body"].read())
    return answer


@pytest.fixture(scope="module")
def approved(
    registry_stack: RegistryStack, realtime_endpoint: Any, async_endpoint: Any, candidate: ModelPackage
) -> Iterator[dict[str, Any]]:
    """Approve the candidate while the real-time endpoint is called and async requests are queued."""
    sagemaker, runtime = registry_stack.client("sagemaker"), registry_stack.client("sagemaker-runtime")
    registry_stack.client("s3").put_object(
        Bucket=BUCKET, Key="async/input/bus.jpg", Body=(ASSETS / "bus.jpg").read_bytes()
    )
    targets = {e: approval.derived_name(GROUP, e, candidate.version) for e in (ASYNC_ENDPOINT, REALTIME_ENDPOINT)}
    with Caller(runtime) as caller:
        poll(lambda: caller.models or None, timeout_s=60, interval_s=0.1, on_timeout=lambda: f"{caller.errors}")
        ran = registry_stack.cli("models", "approve", candidate.arn, "--local")
        assert ran.code == 0, ran.err
        inferences = []
        async_input = f"s3://{BUCKET}/async/input/bus.jpg"

        def queue_one() -> None:
            answer = runtime.invoke_endpoint_async(
                EndpointName=ASYNC_ENDPOINT, InputLocation=async_input, ContentType="image/jpeg"
            )
            inferences.append(answer["InferenceId"])

        while not all(serving(sagemaker, e, c) for e, c in targets.items()):  # queued during the roll
            queue_one()
            time.sleep(2.0)
            assert len(inferences) < 150, "the endpoints were not rolled in 5 minutes"
        queue_one()  # after it: only the new instances are left
        settled = time.monotonic() + 2.0
        poll(lambda: time.monotonic() > settled or None, timeout_s=10, interval_s=0.1, on_timeout=str)
    answers = [poll(lambda i=i: async_answer(registry_stack, i), timeout_s=120, interval_s=0.5,  # type: ignore[misc]
                    on_timeout=lambda: "an async request was dropped") for i in inferences]  # fmt: skip
    yield {"caller": caller, "async_answers": answers, "targets": targets}


def test_pending_package_is_refused_until_approved(registry_stack: RegistryStack, candidate: ModelPackage) -> None:
    ran = registry_stack.cli("transform", "--local", f"s3://{BUCKET}/tin/", "--output", f"s3://{BUCKET}/tout/",
                             "--model-package", candidate.arn)  # fmt: skip
    assert ran.code == 2 and "is PendingManualApproval: approve it first" in ran.err
    ran = registry_stack.cli("deploy", "--realtime", "--local", "--model-package", "latest-approved")
    assert ran.code == 2 and "no approved model package in group 'posebatch'" in ran.err


def test_approval_rolls_both_endpoints_without_dropping_requests(
    approved: dict[str, Any], candidate: ModelPackage
) -> None:
    caller: Caller = approved["caller"]
    assert caller.errors == []
    assert caller.models[0] == "yolo11n-pose.pt" and caller.models[-1] == "candidate.pt"
    # Blue/green: once an answer comes from the new model, none comes from the old one.
    first_new = caller.models.index("candidate.pt")
    assert set(caller.models[first_new:]) == {"candidate.pt"}, caller.models
    answers = approved["async_answers"]
    assert answers and all(a["persons"] for a in answers)
    assert answers[-1]["model"] == "candidate.pt"


def test_approved_package_is_the_default_for_transform(
    registry_stack: RegistryStack, approved: dict[str, Any], candidate: ModelPackage
) -> None:
    current = default_model.read(registry_stack.client("ssm"), GROUP)
    assert current is not None and (current.model_package, current.version) == (candidate.arn, candidate.version)
    listed = registry_stack.cli("models", "list", "--local", "--json").json()
    assert listed["default_model"] == candidate.arn

    registry_stack.client("s3").put_object(Bucket=BUCKET, Key="tin/x.jpg", Body=(ASSETS / "bus.jpg").read_bytes())
    ran = registry_stack.cli("transform", "--local", f"s3://{BUCKET}/tin/", "--output", f"s3://{BUCKET}/tout/",
                             "--wait", "--no-report")  # fmt: skip
    assert ran.code == 0, ran.out + ran.err
    assert f"the approved default of {GROUP} (version {candidate.version})" in ran.err
    record = json.loads(
        registry_stack.client("s3").get_object(Bucket=BUCKET, Key="tout/keypoints/x.jpg.json")["Body"].read()
    )
    assert record["model"] == "candidate.pt" and record["persons"]
    sagemaker = registry_stack.client("sagemaker")
    job = sagemaker.list_transform_jobs()["TransformJobSummaries"][0]["TransformJobName"]
    model = sagemaker.describe_model(ModelName=sagemaker.describe_transform_job(TransformJobName=job)["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == candidate.arn  # built from the package, as on AWS


def test_submit_checks_the_package_the_endpoint_serves(
    registry_stack: RegistryStack, approved: dict[str, Any], candidate: ModelPackage
) -> None:
    ran = registry_stack.cli("submit", "--local", f"s3://{BUCKET}/async/input/bus.jpg", "--wait", "--no-report",
                             "--model-package", candidate.arn)  # fmt: skip
    assert ran.code == 0, ran.err
    assert json.loads(ran.out.splitlines()[-1])["status"] == "ok"


def test_submit_refuses_a_package_the_endpoint_does_not_serve(
    registry_stack: RegistryStack, newer: ModelPackage
) -> None:
    ran = registry_stack.cli(
        "submit", "--local", f"s3://{BUCKET}/async/input/bus.jpg", "--model-package", "latest-approved"
    )
    assert ran.code == 2 and f"not model package {GROUP}/{newer.version}" in ran.err


def test_repeated_stale_and_unapproved_events_change_nothing(
    registry_stack: RegistryStack, approved: dict[str, Any], candidate: ModelPackage, newer: ModelPackage
) -> None:
    sagemaker, ssm = registry_stack.client("sagemaker"), registry_stack.client("ssm")
    before = {e: sagemaker.describe_endpoint(EndpointName=e) for e in approved["targets"]}
    current = default_model.read(ssm, GROUP)
    assert current is not None

    def event(package: str, when: str) -> dict[str, Any]:
        detail = {"ModelPackageGroupName": GROUP, "ModelPackageArn": package, "ModelApprovalStatus": "Approved"}
        return {"detail-type": approval.DETAIL_TYPE, "source": "aws.sagemaker", "time": when, "detail": detail}

    repeated = approval.handle_event(
        event(candidate.arn, current.approved_at), group=GROUP, clients=registry_stack.client
    )
    assert repeated is not None and set(repeated["endpoints"].values()) == {"already"}
    # Approved, but its event is older than the current default's: EventBridge delivered it late.
    stale = approval.handle_event(event(newer.arn, "2000-01-01T00:00:00Z"), group=GROUP, clients=registry_stack.client)
    assert stale is None
    assert registry_stack.cli("models", "reject", newer.arn, "--local").code == 0
    unapproved = approval.handle_event(event(newer.arn, "2999-01-01T00:00:00Z"), group=GROUP,
                                       clients=registry_stack.client)  # fmt: skip
    assert unapproved is None
    after = {e: sagemaker.describe_endpoint(EndpointName=e) for e in approved["targets"]}
    for name in before:
        assert after[name]["EndpointConfigName"] == before[name]["EndpointConfigName"]
        assert after[name]["LastModifiedTime"] == before[name]["LastModifiedTime"]
    assert default_model.read(ssm, GROUP) == current
