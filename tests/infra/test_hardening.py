"""Security scanners and the hardening choices of the template, the image and the model archive.

checkov runs from its own venv (.tools/checkov, made by scripts/setup) because its pins of boto3,
botocore and packaging conflict with the project's; every finding it still reports must be skipped
next to its resource with a reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from batch.model_package import package_checkpoint

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
DOCKERFILE = REPO / "container" / "Dockerfile"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))["Resources"]
    return loaded


def test_checkov_is_clean_and_every_skip_has_a_reason(resources: dict[str, Any]) -> None:
    assert CHECKOV.exists(), "checkov's venv is missing: run scripts/setup (it makes .tools/checkov)"
    completed = subprocess.run(
        [str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(completed.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and completed.returncode == 0, failed
    assert report["summary"]["passed"] > 40
    for name, resource in resources.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 30, f"{name}: skip {skip['id']} without a reason"


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    completed = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_bucket_refuses_plain_http(resources: dict[str, Any]) -> None:
    (statement,) = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert resources["DataBucket"]["DeletionPolicy"] == "Retain"


def role_statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for p in resources[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def subs(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v["Fn::Sub"] if isinstance(v, dict) and "Fn::Sub" in v else json.dumps(v) for v in values]


def test_sagemaker_reads_only_the_input_prefixes_job_files_and_the_model(resources: dict[str, Any]) -> None:
    (read,) = [s for s in role_statements(resources, "SageMakerExecutionRole") if s["Action"] == "s3:GetObject"]
    assert set(subs(read["Resource"])) == {
        "${DataBucket.Arn}/${InputPrefix}*",
        "${DataBucket.Arn}/${BatchInputPrefix}*",
        "${DataBucket.Arn}/${OutputPrefix}_transform/*",
        "arn:${AWS::Partition}:s3:::${ModelBucketName}/${ModelKey}",
        "${DataBucket.Arn}/models/*",  # the registry's packages, `pose-batch deploy --model` uploads
        "${DataBucket.Arn}/training/*/output/model.tar.gz",  # the training pipeline's models (its packages)
    }
    (listing,) = [s for s in role_statements(resources, "SageMakerExecutionRole") if s["Action"] == "s3:ListBucket"]
    assert set(subs(listing["Condition"]["StringLike"]["s3:prefix"])) == {
        "${InputPrefix}*",
        "${BatchInputPrefix}*",
        "${OutputPrefix}_transform/*",
    }


def test_ecr_pulls_only_from_the_project_repository(resources: dict[str, Any]) -> None:
    (pull,) = [s for s in role_statements(resources, "SageMakerExecutionRole") if "ecr:BatchGetImage" in s["Action"]]
    assert subs(pull["Resource"]) == [
        "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${ImageRepositoryName}"
    ]


def test_every_dead_letter_queue_is_alarmed(resources: dict[str, Any]) -> None:
    queues = {resources["InputEventsQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]}
    for name in ("TransformCompletionFunction", "AsyncErrorFunction", "ModelApprovalFunction"):
        queues.add(resources[name]["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0])
    alarmed = {
        d["Value"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/SQS"
        for d in r["Properties"]["Dimensions"]
    }
    assert (
        queues
        == alarmed
        == {
            "InputEventsDeadLetterQueue",
            "CompletionDeadLetterQueue",
            "AsyncErrorDeadLetterQueue",
            "ModelApprovalDeadLetterQueue",
        }
    )


def test_concurrency_is_limited(resources: dict[str, Any]) -> None:
    for name in ("S3TriggerFunction", "TransformCompletionFunction", "AsyncErrorFunction", "ModelApprovalFunction"):
        reserved = resources[name]["Properties"]["ReservedConcurrentExecutions"]
        assert reserved["Fn::If"][0] == "ReserveConcurrency"
    scaling = resources["S3TriggerEventSource"]["Properties"]["ScalingConfig"]
    assert scaling == {"MaximumConcurrency": {"Ref": "TriggerMaxConcurrency"}}


def test_image_runs_as_non_root_offline_without_autoinstall() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "YOLO_OFFLINE=1" in text and "YOLO_AUTOINSTALL=false" in text
    # The name ultralytics reads (checked against the installed version, not a guess).
    import ultralytics.utils

    assert 'env_bool("YOLO_AUTOINSTALL"' in Path(ultralytics.utils.__file__).read_text()


def test_dockerignore_keeps_dev_files_out_but_not_what_the_image_copies() -> None:
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")
    }
    assert {"tests", "batch/local", "benchmarks", "docs", ".venv"} <= ignored
    copied = {
        src.rstrip("/").removeprefix("./")
        for line in re.findall(r"^COPY (.+)$", DOCKERFILE.read_text(), flags=re.M)
        for src in line.split()[:-1]
    }
    assert copied == {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "requirements/lock.txt",
        "batch",
        "events",
        "container/serve",
    }
    assert not copied & ignored
    # The serving code never imports what the image leaves out.
    for path in [*(REPO / "batch").rglob("*.py"), *(REPO / "events").rglob("*.py")]:
        if "local" in path.relative_to(REPO).parts or path.parent.name in ("commands", "stack"):
            continue
        assert "batch.local" not in path.read_text().replace("LOCAL_", ""), path


def test_model_archive_is_readable_by_the_non_root_user(tmp_path: Path) -> None:
    checkpoint = tmp_path / "private.pt"
    checkpoint.write_bytes(b"weights")
    checkpoint.chmod(0o600)
    with tarfile.open(package_checkpoint(checkpoint, tmp_path / "model.tar.gz")) as tar:
        (member,) = tar.getmembers()
    assert (member.name, member.mode) == ("private.pt", 0o644)


SERVICE_OF_TYPE = {
    "S3": "s3",
    "SQS": "sqs",
    "SNS": "sns",
    "IAM": "iam",
    "Logs": "logs",
    "Lambda": "lambda",
    "Events": "events",
    "SageMaker": "sagemaker",
    "ApplicationAutoScaling": "application-autoscaling",
    "CloudWatch": "cloudwatch",
}


def test_deploy_policy_lets_cloudformation_create_every_resource_type(resources: dict[str, Any]) -> None:
    """The stack deploys with the caller's permissions: each service of the template needs a creating action."""
    policy = json.loads((REPO / "docs" / "iam-deploy-policy.json").read_text())
    actions = {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    for resource_type in {r["Type"] for r in resources.values()}:
        service = SERVICE_OF_TYPE[resource_type.split("::")[1]]
        assert any(
            a.startswith(f"{service}:") and a.split(":")[1].startswith(("Create", "Put", "Register")) for a in actions
        ), resource_type
    assert {
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "iam:PassRole",
        "ecr:PutImage",
    } <= actions
    assert all("*" not in a for a in actions)


def test_buildspec_builds_the_dockerfile_and_pushes_to_ecr() -> None:
    import yaml

    spec = yaml.safe_load((REPO / "buildspec.yml").read_text())
    assert spec["version"] == 0.2
    commands = " ".join(c for phase in spec["phases"].values() for c in phase["commands"])
    for text in ("ecr get-login-password", "scanOnPush=true", "-f container/Dockerfile", "docker push"):
        assert text in commands


TOPIC_PUBLISHERS = {  # each topic: who may publish (a role of the stack, or CloudWatch alarms)
    "AsyncSuccessTopic": {"AWS": {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}},
    "AsyncErrorTopic": {"AWS": {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}},
    "TransformCompletionTopic": {
        "AWS": [{"Fn::GetAtt": ["TransformCompletionRole", "Arn"]}, {"Fn::GetAtt": ["TransformPagesRole", "Arn"]}]
    },
    "AlarmTopic": {"Service": "cloudwatch.amazonaws.com"},
}


def test_only_the_stacks_own_publishers_may_publish_to_its_topics(resources: dict[str, Any]) -> None:
    """Without topic policies any principal of the account could publish (forged failure notifications
    re-invoked the endpoint and overwrote good records). Every topic: an Allow for its publisher alone, and
    a Deny of sns:Publish for every other IAM principal (an identity policy cannot override it)."""
    topics = {name for name, r in resources.items() if r["Type"] == "AWS::SNS::Topic"}
    assert topics == set(TOPIC_PUBLISHERS)
    publishing_roles = {  # every role the template lets publish is a topic's publisher
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::IAM::Role"
        and any(s.get("Action") == "sns:Publish" for s in role_statements(resources, name))
    }
    allowed = [p["AWS"] for p in TOPIC_PUBLISHERS.values() if "AWS" in p]
    named = {a["Fn::GetAtt"][0] for p in allowed for a in (p if isinstance(p, list) else [p])}
    assert publishing_roles == named
    policies = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    for topic, publisher in TOPIC_PUBLISHERS.items():
        (policy,) = [p for p in policies if {"Ref": topic} in p["Topics"]]
        statements = policy["PolicyDocument"]["Statement"]
        (allowed,) = [s for s in statements if s["Effect"] == "Allow"]
        assert allowed["Principal"] == publisher and allowed["Action"] == "sns:Publish", topic
        (denied,) = [s for s in statements if s["Effect"] == "Deny"]
        assert denied["Principal"] == "*" and denied["Action"] == "sns:Publish"
        # Denied unless a service principal (CloudWatch alarms) or the allowed role itself.
        assert denied["Condition"]["Null"] == {"aws:PrincipalServiceName": "true"}
        if "AWS" in publisher:
            assert denied["Condition"]["StringNotEquals"] == {"aws:PrincipalArn": publisher["AWS"]}
        else:
            assert "StringNotEquals" not in denied["Condition"] and allowed["Condition"]["StringEquals"] == {
                "aws:SourceAccount": {"Ref": "AWS::AccountId"}
            }


def test_the_training_pipeline_roles_are_scoped(resources: dict[str, Any]) -> None:
    training = role_statements(resources, "TrainingJobRole")
    (write,) = [s for s in training if s["Action"] == "s3:PutObject"]
    assert subs(write["Resource"]) == ["${DataBucket.Arn}/training/*"]
    pipeline = role_statements(resources, "PipelineRole")
    (passing,) = [s for s in pipeline if s["Action"] == "iam:PassRole"]
    assert passing["Resource"] == {"Fn::GetAtt": ["TrainingJobRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (registering,) = [s for s in pipeline if "sagemaker:CreateModelPackage" in s["Action"]]
    assert all("${AWS::StackName}" in r for r in subs(registering["Resource"]))
    assert not any(s["Action"] == "s3:PutObject" for s in pipeline)  # it only reads the evaluation
