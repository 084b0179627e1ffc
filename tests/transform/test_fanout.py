"""Finalisation fanned out, on the real moto server with the local stack's Lambda stand-in (SQS pollers,
a bounded number at once): job-end event -> tasks on the pages queue -> concurrent page invocations ->
one `_SUMMARY.json`, one notification, whatever is duplicated. The jobs are synthetic manifest jobs of
tiny shards (no inference), with groups of 3 pages so that a few pages make several groups."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from batch.local.moto_server import MotoServer
from batch.local.sqs_poller import SqsLambdaPoller
from batch.orchestration_settings import CompletionConfig
from batch.transform import fanout, outcomes
from batch.transform.completion import DETAIL_TYPE, handle_event
from batch.transform.notification import CLAIM_LEASE_S, SummaryPending, finish, notified_uri
from batch.transform.outcomes import claim_uri, existing_summary, save_job
from batch.transform.plan import PLAN_ENV, JobPlan, build_shards
from batch.transform.s3_objects import put_json

BUCKET = "bkt"
CONCURRENCY = 3
PERSON = {"score": 0.9, "box": [0, 0, 1, 1], "keypoints": [[0.5, 0.5, 0.9]]}


@pytest.fixture(autouse=True)
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outcomes, "GROUP_PAGES", 3)


@dataclass
class Account:
    moto: MotoServer
    topic_arn: str
    notifications_url: str
    pages_url: str
    pages_arn: str
    active: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def config(self) -> CompletionConfig:
        return CompletionConfig(topic_arn=self.topic_arn, pages_queue_url=self.pages_url)

    def page_invocation(self, event: dict[str, Any], context: Any) -> Any:
        """The page Lambda, counted: how many run at once."""
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return fanout.handle_task_records(
                event, clients=self.moto.client, topic_arn=self.topic_arn, job_prefix="posebatch-"
            )
        finally:
            with self.lock:
                self.active -= 1

    def notifications(self, job: str) -> list[dict[str, Any]]:
        sqs, found = self.moto.client("sqs"), []
        while True:
            messages = sqs.receive_message(QueueUrl=self.notifications_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return [m for m in found if m["MessageAttributes"]["job"]["Value"] == job]
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.notifications_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    with MotoServer() as moto:
        moto.client("s3").create_bucket(Bucket=BUCKET)
        moto.client("sagemaker").create_model(
            ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
        )
        sqs, sns = moto.client("sqs"), moto.client("sns")
        topic = sns.create_topic(Name="done")["TopicArn"]
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("done", "pages")}
        arns = {
            name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for name, url in urls.items()
        }
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arns["done"])
        yield Account(moto, topic, urls["done"], urls["pages"], arns["pages"])


@pytest.fixture
def pollers(account: Account) -> Iterator[None]:
    """The page invocations: at most CONCURRENCY at once, as the event source's MaximumConcurrency."""
    sqs = account.moto.client("sqs")
    poller = SqsLambdaPoller(
        sqs, account.pages_url, account.pages_arn, account.page_invocation, batch_size=1, concurrency=CONCURRENCY
    ).start()
    yield
    poller.stop()


def synthetic_job(account: Account, name: str, shards: int) -> JobPlan:
    """A manifest job of `shards` two-image shards whose `.out` files the container left: every image posed
    with one person, except that the last shard lacks its second line (missing_result)."""
    s3 = account.moto.client("s3")
    plan = JobPlan(name, "manifest", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out-{name}/")
    plan.keys = [f"cam/{i:04d}.jpg" for i in range(2 * shards)]
    plan.shards = build_shards(plan, 1, shards_per_instance=1, max_images_per_shard=2)
    plan.save(s3)
    for index, shard in enumerate(plan.shards):
        images = shard.images[:1] if index == shards - 1 else shard.images
        lines = [{"image": str(plan.image_uri(rel)), "status": "ok", "result": {"persons": [PERSON]}} for rel in images]
        out = plan.transform_output_uri.child(shard.rel + ".out")
        s3.put_object(Bucket=BUCKET, Key=out.key, Body="".join(json.dumps(x) + "\n" for x in lines).encode())
    account.moto.client("sagemaker").create_transform_job(
        TransformJobName=name,
        ModelName="m",
        Environment={PLAN_ENV: str(plan.plan_uri)},
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": plan.input}}},
        TransformOutput={"S3OutputPath": str(plan.transform_output_uri)},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )
    return plan


def ended(name: str) -> dict[str, Any]:
    return {"detail-type": DETAIL_TYPE, "detail": {"TransformJobName": name, "TransformJobStatus": "Completed"}}


def wait_for_notification(account: Account, name: str, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = account.notifications(name)
        if found:
            return found
        time.sleep(0.2)  # polling the notification queue under a deadline
    raise TimeoutError(f"no notification for {name}")


def test_pages_finalised_concurrently_give_one_summary_and_one_notification(account: Account, pollers: None) -> None:
    plan = synthetic_job(account, "posebatch-fan", shards=20)  # 20 pages, 7 groups of at most 3
    assert handle_event(ended(plan.job_name), account.config, clients=account.moto.client) is None  # queued
    notes = wait_for_notification(account, plan.job_name)
    summary = existing_summary(account.moto.client("s3"), plan, "Completed")
    assert summary is not None
    assert (summary["images"], summary["done"], summary["failed"]) == (40, 39, 1)
    assert (summary["persons"], summary["images_with_persons"]) == (39, 39)
    assert [f["error"]["code"] for f in summary["failures"]] == ["missing_result"]
    assert "40 in total, 39 done, 1 failed" in notes[0]["Message"]
    assert 1 <= account.peak <= CONCURRENCY
    # A duplicate job-end event after the end: nothing is redone or announced again.
    assert handle_event(ended(plan.job_name), account.config, clients=account.moto.client) == summary
    assert account.notifications(plan.job_name) == []
    assert len(notes) == 1


def test_every_task_delivered_twice_still_gives_one_notification(account: Account, pollers: None) -> None:
    """At-least-once delivery: the whole job's tasks twice, racing each other over the same pages,
    groups and claim."""
    plan = synthetic_job(account, "posebatch-twice", shards=12)
    s3 = account.moto.client("s3")
    save_job(s3, plan, account.moto.client("sagemaker").describe_transform_job(TransformJobName=plan.job_name))
    for _ in range(2):
        assert fanout.dispatch(account.moto.client, account.pages_url, plan, "Completed") is None
    assert len(wait_for_notification(account, plan.job_name)) == 1
    sqs = account.moto.client("sqs")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every duplicate handled (a loser of the claim is retried later)
        attributes = sqs.get_queue_attributes(QueueUrl=account.pages_url, AttributeNames=["All"])["Attributes"]
        if attributes["ApproximateNumberOfMessages"] == "0" and account.active == 0:
            break
        time.sleep(0.2)  # polling the queue's depth under a deadline
    assert account.notifications(plan.job_name) == []
    summary = existing_summary(s3, plan, "Completed")
    assert summary is not None and (summary["images"], summary["done"]) == (24, 23)


def test_queueing_continues_where_the_deadline_stopped_it(account: Account) -> None:
    plan = synthetic_job(account, "posebatch-windows", shards=7)
    sqs = account.moto.client("sqs")
    queue = sqs.create_queue(QueueName="windows")["QueueUrl"]
    assert fanout.dispatch(account.moto.client, queue, plan, "Completed", deadline=0.0, window=2) == 6
    assert fanout.dispatch(account.moto.client, queue, plan, "Completed", start=6, deadline=0.0, window=2) is None
    bodies = [
        fanout.Task.parse(m["Body"])
        for _ in range(3)
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    ]
    assert sorted((t.start, t.end) for t in bodies) == [(0, 3), (3, 6), (6, 7)]  # whole groups, each once


def test_without_a_queue_the_handler_finalises_in_turn_until_its_deadline(account: Account) -> None:
    plan = synthetic_job(account, "posebatch-here", shards=4)
    s3 = account.moto.client("s3")
    job = account.moto.client("sagemaker").describe_transform_job(TransformJobName=plan.job_name)
    here = {"clients": account.moto.client, "topic_arn": account.topic_arn, "deadline": 0.0}
    assert fanout.run_here(s3, plan, job, **here) == 3  # one task (a group of 3 pages), then a continuation
    summary = fanout.run_here(s3, plan, job, start=3, **here)
    assert isinstance(summary, dict) and (summary["images"], summary["done"]) == (8, 7)
    assert len(account.notifications(plan.job_name)) == 1


def test_a_claim_is_held_while_fresh_and_taken_over_when_stale(account: Account) -> None:
    """A page invocation that died holding the claim: its retry finds the claim fresh (try later), then
    stale (take over, write the summary, notify once)."""
    plan = synthetic_job(account, "posebatch-claim", shards=2)
    s3 = account.moto.client("s3")
    job = account.moto.client("sagemaker").describe_transform_job(TransformJobName=plan.job_name)
    for task in fanout.tasks(plan, "Completed"):
        fanout.run_task(s3, plan, job, task)
    claim = claim_uri(plan, "Completed")
    put_json(s3, claim, {"claimed_at": time.time()})
    with pytest.raises(SummaryPending):
        finish(s3, plan, job, clients=account.moto.client, topic_arn=account.topic_arn)
    put_json(s3, claim, {"claimed_at": time.time() - CLAIM_LEASE_S - 1})
    summary = finish(s3, plan, job, clients=account.moto.client, topic_arn=account.topic_arn)
    assert summary["done"] == 3 and s3.get_object(Bucket=BUCKET, Key=notified_uri(plan, "Completed").key)
    assert finish(s3, plan, job, clients=account.moto.client, topic_arn=account.topic_arn) == summary
    assert len(account.notifications(plan.job_name)) == 1


@pytest.mark.parametrize(
    "task",
    [
        fanout.Task("other-team-job", "Completed", f"s3://{BUCKET}/x/plan.json", 0, 1),  # not our prefix
        fanout.Task("posebatch-never-ended", "Completed", "s3://bkt/out-posebatch-forged/_transform/x/plan.json", 0, 1),
        fanout.Task("posebatch-garbage", "Completed", "not a uri", 0, 1),
    ],
    ids=["foreign-name", "no-plan", "not-a-uri"],
)
def test_a_forged_task_is_ignored(account: Account, task: fanout.Task) -> None:
    s3 = account.moto.client("s3")
    before = s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    result = fanout.handle_task(task, clients=account.moto.client, topic_arn=account.topic_arn, job_prefix="posebatch-")
    assert result is None and s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == before


def test_a_task_for_a_job_whose_end_was_not_recorded_does_nothing(account: Account) -> None:
    """The plan is real, but the dispatcher never recorded the job as ended: no page is finalised."""
    plan = synthetic_job(account, "posebatch-unrecorded", shards=1)
    task = next(fanout.tasks(plan, "Completed"))
    assert fanout.handle_task(task, clients=account.moto.client, topic_arn=None, job_prefix="posebatch-") is None
    listed = account.moto.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=plan.root.child("finalized/").key)
    assert listed.get("KeyCount", 0) == 0
