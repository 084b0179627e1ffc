"""The async endpoint stand-in's control plane and runtime errors, through plain boto3 clients as on
AWS (no container needed here; the end-to-end flow is in tests/async_/test_async_flow.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch.async_inference.layout import AsyncLayout
from batch.deploy.async_endpoint import AsyncEndpointSpec, deploy

BUCKET = "posebatch-endpoint-test"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from batch.local.stack import EmbeddedStack

    with EmbeddedStack(Path(tmp_path_factory.mktemp("endpoint-stack")), bucket=BUCKET) as running:
        yield running


def spec(name: str, model_data_url: str) -> AsyncEndpointSpec:
    return AsyncEndpointSpec(
        endpoint_name=name,
        image_uri="posebatch-local:latest",
        model_data_url=model_data_url,
        execution_role_arn="arn:aws:iam::000000000000:role/r",
        layout=AsyncLayout.create(f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/"),
        success_topic_arn="arn:aws:sns:us-east-1:000000000000:ok",
        max_concurrent_invocations=2,
    )


def test_endpoint_config_round_trip(stack: Any) -> None:
    sagemaker = stack.client("sagemaker")
    with pytest.raises(ClientError, match="Could not find model"):
        sagemaker.create_endpoint_config(
            EndpointConfigName="orphan",
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "nope", "InitialInstanceCount": 1}],
        )
    definition = spec("cfg", f"s3://{BUCKET}/missing.tar.gz")
    sagemaker.create_model(
        ModelName=definition.model_name,
        PrimaryContainer={"Image": definition.image_uri, "ModelDataUrl": definition.model_data_url},
        ExecutionRoleArn=definition.execution_role_arn,
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=definition.endpoint_config_name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": definition.model_name, "InitialInstanceCount": 1}
        ],
        AsyncInferenceConfig=definition.async_inference_config(),
    )
    described = sagemaker.describe_endpoint_config(EndpointConfigName=definition.endpoint_config_name)
    output = described["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"] == f"s3://{BUCKET}/out/_async/responses"
    assert output["S3FailurePath"] == f"s3://{BUCKET}/out/_async/failures"
    assert described["AsyncInferenceConfig"]["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 2}
    sagemaker.delete_endpoint_config(EndpointConfigName=definition.endpoint_config_name)
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sagemaker.describe_endpoint_config(EndpointConfigName=definition.endpoint_config_name)


def test_endpoint_with_a_missing_artifact_fails_with_a_reason(stack: Any) -> None:
    sagemaker = stack.client("sagemaker")
    with pytest.raises(RuntimeError, match="failed"):
        deploy(spec("broken", f"s3://{BUCKET}/no/such/model.tar.gz"), sagemaker, wait_s=60)
    described = sagemaker.describe_endpoint(EndpointName="broken")
    assert described["EndpointStatus"] == "Failed" and described["FailureReason"]
    listed = sagemaker.list_endpoints(StatusEquals="Failed")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["broken"]
    # Re-running a deployment keeps what exists instead of failing on "already existing".
    with pytest.raises(RuntimeError, match="failed"):
        deploy(spec("broken", f"s3://{BUCKET}/no/such/model.tar.gz"), sagemaker, wait_s=60)
    sagemaker.delete_endpoint(EndpointName="broken")
    assert sagemaker.list_endpoints()["Endpoints"] == []


@pytest.mark.parametrize(("endpoint", "message"), [("unknown", "not found"), ("broken2", "Failed")])
def test_invocations_of_unusable_endpoints_are_validation_errors(stack: Any, endpoint: str, message: str) -> None:
    if endpoint == "broken2":
        with pytest.raises(RuntimeError):
            deploy(spec("broken2", f"s3://{BUCKET}/none.tar.gz"), stack.client("sagemaker"), wait_s=60)
    runtime = stack.client("sagemaker-runtime")
    with pytest.raises(ClientError, match=message) as caught:
        runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation=f"s3://{BUCKET}/in/a.jpg")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
