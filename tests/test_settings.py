"""The container's settings (`batch.settings.Settings`) and the handlers' and CLI's
(`batch.orchestration_settings`): names, defaults, aliases, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from batch.custom_attributes import InferenceOptions, parse_custom_attributes
from batch.errors import InvalidAttributes
from batch.orchestration_settings import DeploymentDefaults, TriggerConfig, aws_region, transform_topic_arn
from batch.settings import Settings


def test_defaults_without_any_environment() -> None:
    settings = Settings.from_env({})
    assert (settings.conf, settings.iou, settings.max_det, settings.imgsz) == (0.25, 0.7, 300, 640)
    assert settings.model_dir == Path("/opt/ml/model") and settings.port == 8080
    assert settings.allowed_buckets == () and settings.max_payload_bytes == 100 * 1024 * 1024


@pytest.mark.parametrize(
    ("environ", "field", "expected"),
    [
        ({"SM_MODEL_DIR": "/m"}, "model_dir", Path("/m")),
        ({"POSE_MODEL_DIR": "/m2"}, "model_dir", Path("/m2")),
        ({"SAGEMAKER_BATCH": "True"}, "sagemaker_batch", True),
        ({"SAGEMAKER_BATCH": "false"}, "sagemaker_batch", False),
        ({"POSE_HALF": "auto"}, "half", None),
        ({"POSE_HALF": "1"}, "half", True),
        ({"POSE_ALLOWED_BUCKETS": " a , b,, "}, "allowed_buckets", ("a", "b")),
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}, "max_payload_bytes", None),
        ({"POSE_IMGSZ": "1280"}, "imgsz", 1280),
        ({"UNRELATED": "x"}, "imgsz", 640),
    ],
)
def test_names_and_parsing(environ: dict[str, str], field: str, expected: object) -> None:
    assert getattr(Settings.from_env(environ), field) == expected


@pytest.mark.parametrize("imgsz", ["650", "16", "4128", "abc"])
def test_imgsz_is_refused_exactly_as_a_requests_imgsz_is(imgsz: str) -> None:
    with pytest.raises(ValidationError):
        Settings.from_env({"POSE_IMGSZ": imgsz})
    with pytest.raises(InvalidAttributes):
        parse_custom_attributes(f"imgsz={imgsz}", InferenceOptions.defaults(Settings.from_env({})))


def test_requests_imgsz_is_capped_by_the_deployment() -> None:
    assert Settings.from_env({}).max_imgsz == 1280
    assert Settings.from_env({"POSE_IMGSZ": "1536", "POSE_MAX_IMGSZ": "1536"}).imgsz == 1536
    for environ in ({"POSE_IMGSZ": "1536"}, {"POSE_MAX_IMGSZ": "1000"}, {"POSE_MAX_IMGSZ": "8192"}):
        with pytest.raises(ValidationError):
            Settings.from_env(environ)


@pytest.mark.parametrize("environ", [{"POSE_CONF": "1.5"}, {"SAGEMAKER_BATCH": "maybe"}, {"POSE_BACKEND": "tpu"}])
def test_bad_values_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.from_env(environ)


def test_updated_validates_like_the_environment() -> None:
    settings = Settings.from_env({})
    assert settings.updated(pose_model="m.pt", port=9000).port == 9000
    with pytest.raises(ValidationError):
        settings.updated(port=0)


def test_trigger_config() -> None:
    config = TriggerConfig.from_env(
        {
            "POSEBATCH_ENDPOINT_NAME": "ep",
            "POSEBATCH_INPUT_PREFIX": "/in//",
            "POSEBATCH_INVOCATION_TIMEOUT_S": "60",
        }
    )
    assert config == TriggerConfig("ep", "in/", None, 60, None)
    with pytest.raises(RuntimeError, match="POSEBATCH_ENDPOINT_NAME"):
        TriggerConfig.from_env({})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DeploymentDefaults(None, None, None)),
        (
            {"POSEBATCH_IMAGE_URI": "img", "POSEBATCH_ROLE_ARN": "role", "POSEBATCH_MODEL_DATA": "s3://b/m"},
            DeploymentDefaults("img", "role", "s3://b/m"),
        ),
        ({"POSE_IMAGE_URI": "old", "POSE_SAGEMAKER_ROLE": "old-role"}, DeploymentDefaults("old", "old-role", None)),
        ({"POSEBATCH_IMAGE_URI": "new", "POSE_IMAGE_URI": "old"}, DeploymentDefaults("new", None, None)),
    ],
)
def test_deployment_defaults_and_their_deprecated_names(environ: dict[str, str], expected: DeploymentDefaults) -> None:
    assert DeploymentDefaults.from_env(environ) == expected


def test_region_and_topic() -> None:
    assert aws_region({}) == "us-east-1"
    assert aws_region({"AWS_DEFAULT_REGION": "eu-west-1"}) == "eu-west-1"
    assert aws_region({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}) == "eu-central-1"
    assert transform_topic_arn({}) is None
    assert transform_topic_arn({"POSEBATCH_TRANSFORM_TOPIC_ARN": "arn:t"}) == "arn:t"


def test_completion_config_and_the_local_finalize_concurrency() -> None:
    from batch.orchestration_settings import CompletionConfig, local_finalize_concurrency

    assert CompletionConfig.from_env({}) == CompletionConfig(None, "posebatch-", None)
    env = {
        "POSEBATCH_TRANSFORM_TOPIC_ARN": "arn:t",
        "POSEBATCH_TRANSFORM_JOB_PREFIX": "team-a-",
        "POSEBATCH_FINALIZE_QUEUE_URL": "https://sqs/q",
    }
    assert CompletionConfig.from_env(env) == CompletionConfig("arn:t", "team-a-", "https://sqs/q")
    assert local_finalize_concurrency({}) == 4
    assert local_finalize_concurrency({"POSEBATCH_FINALIZE_CONCURRENCY": "8"}) == 8
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match="a whole number, at least 1"):
            local_finalize_concurrency({"POSEBATCH_FINALIZE_CONCURRENCY": bad})
