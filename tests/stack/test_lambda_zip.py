"""The Lambda zip: the handlers and exactly the project modules they import, and nothing Lambda's
python3.12 runtime lacks. The zip is unpacked and imported by an isolated interpreter whose import path
holds only the standard library, the zip and boto3 with its own dependencies (what the runtime ships),
which then handles recorded events against a real moto server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch.async_inference.layout import inference_id
from batch.local.moto_server import MotoServer
from batch.stack.lambda_zip import RUNTIME_PACKAGES, UnsupportedImport, build_lambda_zip, import_closure, project_root
from batch.transform.plan import PLAN_ENV, JobPlan

BUCKET = "posebatch-zip-test"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


HANDLERS = {
    "events/__init__.py": "",
    "batch/__init__.py": "",
    "events/transform_completion.py": "import json\n",
    "events/transform_finalize_pages.py": "import json\n",
    "events/async_error.py": "import logging\n",
    "events/model_approval.py": "import json\n",
}


@pytest.mark.parametrize(
    ("trigger", "extra", "expected"),
    [
        ("import json, logging\nimport boto3\nfrom botocore.config import Config\n", {}, set()),
        ("from batch.util import f\n", {"batch/util.py": "def f(): ...\n"}, {"batch", "batch.util"}),
        ("from batch import util\n", {"batch/util.py": "import os\n"}, {"batch", "batch.util"}),
        ("from .layout import X\n", {"events/layout.py": "X = 1\n"}, {"events.layout"}),
        (
            "from batch.sub.mod import f\n",
            {
                "batch/sub/__init__.py": "from batch.sub import helper\n",
                "batch/sub/mod.py": "",
                "batch/sub/helper.py": "",
            },
            {"batch", "batch.sub", "batch.sub.mod", "batch.sub.helper"},
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pydantic\n",
            {},
            set(),
        ),
    ],
    ids=["stdlib-boto3", "from-module", "from-package-import-module", "relative", "package-init", "type-checking"],
)
def test_closure_holds_exactly_the_imported_project_modules(
    tmp_path: Path, trigger: str, extra: dict[str, str], expected: set[str]
) -> None:
    root = write_tree(tmp_path, {**HANDLERS, "events/s3_trigger.py": trigger, **extra})
    closure = import_closure(root)
    base = {
        "events",
        "events.s3_trigger",
        "events.transform_completion",
        "events.transform_finalize_pages",
        "events.async_error",
        "events.model_approval",
    }
    assert set(closure.modules) == base | expected


@pytest.mark.parametrize("module", ["pydantic", "numpy", "distutils"])
def test_a_module_lambda_lacks_fails_packaging_naming_the_import(tmp_path: Path, module: str) -> None:
    root = write_tree(
        tmp_path, {**HANDLERS, "events/s3_trigger.py": "from batch import cfg\n", "batch/cfg.py": f"import {module}\n"}
    )
    with pytest.raises(UnsupportedImport, match=rf"batch\.cfg imports '{module}'"):
        build_lambda_zip(root, tmp_path / "out")
    assert not (tmp_path / "out" / "lambda.zip").exists()


def test_the_zip_holds_only_handler_code(tmp_path: Path) -> None:
    path, closure = build_lambda_zip(project_root(), tmp_path)
    names = zipfile.ZipFile(path).namelist()
    handlers = {"s3_trigger", "transform_completion", "transform_finalize_pages", "async_error", "model_approval"}
    assert {f"events/{name}.py" for name in handlers} <= set(names)
    assert all(n.endswith(".py") and n.split("/")[0] in ("batch", "events") for n in names)
    # Serving and local-stack code must never ride along.
    assert not [n for n in names if n.startswith(("batch/inference/", "batch/local/", "batch/server/"))]
    assert set(closure.external) <= set(sys.stdlib_module_names) | RUNTIME_PACKAGES
    # Same sources, same bytes: CloudFormation sees no change when nothing changed.
    again, _ = build_lambda_zip(project_root(), tmp_path / "again")
    assert again.read_bytes() == path.read_bytes()


# --- the zip in a Lambda-like interpreter, against moto ----------------------------------------
RUNNER = """
import json, os, sys
code, runtime, events_file = sys.argv[1:4]
sys.path[:] = [p for p in sys.path if "site-packages" not in p] + [code, runtime]
for absent in ("pydantic", "moto", "numpy", "sagemaker", "pytest"):
    try:
        __import__(absent)
    except ImportError:
        continue
    raise SystemExit(f"{absent} is importable: the interpreter is not isolated")
from events import async_error, model_approval, s3_trigger, transform_completion, transform_finalize_pages
events = json.load(open(events_file))
handlers = {"s3": s3_trigger, "async": async_error, "model": model_approval}
results = {name: handlers.get(name.split("-")[0], transform_completion).handler(event, None)
           for name, event in events.items()}
# The page tasks the completion handler queued, each to the page handler (the event source's part).
import boto3
sqs, queue, pages = boto3.client("sqs"), os.environ["POSEBATCH_FINALIZE_QUEUE_URL"], []
while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
    for m in messages:
        record = {"messageId": m["MessageId"], "body": m["Body"]}
        pages.append(transform_finalize_pages.handler({"Records": [record]}, None))
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
results["pages"] = pages
loaded = sorted(m.__name__ for m in sys.modules.values() if m.__name__.split(".")[0] in ("batch", "events"))
files = {m.__file__ for m in sys.modules.values() if getattr(m, "__file__", None)}
print(json.dumps({"results": results, "loaded": loaded,
                  "outside": sorted(f for f in files if "site-packages" in f and not f.startswith(runtime))}))
"""


def runtime_dir(target: Path) -> Path:
    """boto3 and the packages it needs, linked from this venv: what Lambda's runtime ships."""
    import boto3 as _boto3

    site = Path(_boto3.__file__).parents[1]
    target.mkdir()
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
        (target / name).symlink_to(site / name)
    return target


def s3_record(key: str) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"}, "object": {"key": key, "size": 9}},
    }


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_unpacked_zip_handles_recorded_events_with_only_boto3(tmp_path: Path, moto: MotoServer) -> None:
    zip_path, closure = build_lambda_zip(project_root(), tmp_path / "dist")
    code = tmp_path / "code"
    zipfile.ZipFile(zip_path).extractall(code)
    runtime = runtime_dir(tmp_path / "runtime")

    s3, sns, sqs, sagemaker = (moto.client(s) for s in ("s3", "sns", "sqs", "sagemaker"))
    s3.create_bucket(Bucket=BUCKET)
    topic = sns.create_topic(Name="completion")["TopicArn"]
    queue = sqs.create_queue(QueueName="completion-mail")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    pages_queue = sqs.create_queue(QueueName="transform-pages")["QueueUrl"]
    # A finished transform job with a plan of two images and no outputs: both end with error records.
    plan = JobPlan(
        "posebatch-images-1", "images", f"s3://{BUCKET}/batch-input/", f"s3://{BUCKET}/output/", ["a.jpg", "b.jpg"]
    )
    plan.save(s3)
    sagemaker.create_model(
        ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
    )
    sagemaker.create_transform_job(
        TransformJobName=plan.job_name,
        ModelName="m",
        Environment={PLAN_ENV: str(plan.plan_uri)},
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": plan.input}}},
        TransformOutput={"S3OutputPath": str(plan.transform_output_uri)},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )
    # An approved model package of the stack's group (moto's registry): it becomes the default model.
    sagemaker.create_model_package_group(ModelPackageGroupName="posebatch", ModelPackageGroupDescription="zip test")
    package = sagemaker.create_model_package(
        ModelPackageGroupName="posebatch",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "i", "ModelDataUrl": f"s3://{BUCKET}/models/m.tar.gz"}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    s3_event = {"Records": [s3_record("input/a.jpg")]}
    # The error handler handles only a request it can match: the input's id as the trigger gives it.
    e_version = s3.put_object(Bucket=BUCKET, Key="input/e.jpg", Body=b"e")["ETag"]
    events = {
        "s3-event": s3_event,
        "s3-sqs-batch": {
            "Records": [
                {
                    "messageId": "m1",
                    "body": json.dumps({"Records": [s3_record("input/b.jpg")]}),
                    "eventSource": "aws:sqs",
                },
                {
                    "messageId": "m2",
                    "body": json.dumps({"Records": [s3_record("input/c d.png")]}),
                    "eventSource": "aws:sqs",
                },
            ]
        },
        "s3-test-event": {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Bucket": BUCKET,
            "Time": "2024-05-01T12:00:00Z",
        },
        # SageMaker's error notification (SNS invoking Lambda) for an image the container rejected
        # without writing its record: the error handler writes it.
        "async-error": {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "Sns": {
                        "Type": "Notification",
                        "Message": json.dumps(
                            {
                                "invocationStatus": "Failed",
                                "inferenceId": inference_id(BUCKET, "input/e.jpg", e_version),
                                "failureReason": "ClientError: Received client error (400) from primary",
                                "requestParameters": {
                                    "endpointName": "posebatch-async",
                                    "inputLocation": f"s3://{BUCKET}/input/e.jpg",
                                },
                            }
                        ),
                    },
                }
            ]
        },
        "model-approved": {
            "version": "0",
            "source": "aws.sagemaker",
            "detail-type": "SageMaker Model Package State Change",
            "time": "2024-05-01T12:00:00Z",
            "detail": {
                "ModelPackageGroupName": "posebatch",
                "ModelPackageArn": package,
                "ModelApprovalStatus": "Approved",
            },
        },
        "transform-state-change": {
            "version": "0",
            "source": "aws.sagemaker",
            "detail-type": "SageMaker Transform Job State Change",
            "detail": {"TransformJobName": plan.job_name, "TransformJobStatus": "Completed"},
        },
    }
    events_file = tmp_path / "events.json"
    events_file.write_text(json.dumps(events))
    env = {
        **moto.environment,
        "POSEBATCH_ENDPOINT_NAME": "posebatch-async",
        "POSEBATCH_INPUT_PREFIX": "input/",
        "POSEBATCH_OUTPUT_URI": f"s3://{BUCKET}/output/",
        "POSEBATCH_TRANSFORM_TOPIC_ARN": topic,
        "POSEBATCH_FINALIZE_QUEUE_URL": pages_queue,
        "POSEBATCH_MODEL_PACKAGE_GROUP": "posebatch",
        "PATH": "/usr/bin:/bin",
    }
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUNNER, str(code), str(runtime), str(events_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["outside"] == []
    assert set(report["loaded"]) <= set(closure.modules)
    results = report["results"]
    # A direct S3 event reports its counts; an SQS batch reports only the messages to retry.
    assert results["s3-event"] == {"submitted": 1, "rejected": 0}
    assert results["s3-sqs-batch"] == {"batchItemFailures": []}
    assert results["s3-test-event"] == {"submitted": 0, "rejected": 0}
    assert results["transform-state-change"] == {"batchItemFailures": []}
    assert results["pages"] == [{"batchItemFailures": []}]  # one task: a plan of one page
    assert results["async-error"] == {"retried": 0, "final": 1}
    assert results["model-approved"] == {"batchItemFailures": []}
    default = json.loads(
        moto.client("ssm").get_parameter(Name="/posebatch/model-registry/posebatch/default-model")["Parameter"]["Value"]
    )
    assert (default["model_package"], default["model_data"]) == (package, f"s3://{BUCKET}/models/m.tar.gz")
    rejected = json.loads(s3.get_object(Bucket=BUCKET, Key="output/keypoints/e.jpg.json")["Body"].read())
    assert rejected["error"]["code"] == "inference_rejected"
    # The completion handler fanned the job out, its page invocation finalised it and announced it on SNS.
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="output/_SUMMARY.json")["Body"].read())
    assert (summary["images"], summary["failed"]) == (2, 2)
    assert s3.head_object(Bucket=BUCKET, Key="output/keypoints/a.jpg.json")
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    assert "posebatch-images-1 ended: Completed" in messages[0]["Body"]


def test_package_command_writes_the_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batch.cli import main

    assert main(["stack", "package", "--out", str(tmp_path)]) == 0
    assert zipfile.ZipFile(tmp_path / "lambda.zip").testzip() is None
    assert "events.s3_trigger" in capsys.readouterr().out
