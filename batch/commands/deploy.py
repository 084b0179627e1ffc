"""`pose-batch deploy`: deploy the asynchronous endpoint (model, endpoint config with
AsyncInferenceConfig, endpoint) and its scale-to-zero autoscaling on AWS, or (`--local`) on the running
`pose-batch local up` stack, where the S3-event path (bucket -> SQS -> the S3 trigger) is wired too."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from batch.commands.common import add_local_arguments, local_home
from batch.orchestration_settings import DeploymentDefaults

if TYPE_CHECKING:
    from batch.aws import Clients


def register(subparsers: Any) -> None:
    defaults = DeploymentDefaults.from_env()
    parser = subparsers.add_parser(
        "deploy", aliases=["deploy-async"], help="deploy the async inference endpoint", description=__doc__
    )
    parser.add_argument("--endpoint", default="posebatch-async", help="endpoint name")
    parser.add_argument("--input", required=True, help="input root s3://bucket/prefix/ (what triggers inference)")
    parser.add_argument(
        "--output", required=True, help="output root s3://bucket/prefix/ (keypoints/, annotated/, _async/)"
    )
    parser.add_argument(
        "--model-data",
        default=defaults.model_data,
        help="s3://.../model.tar.gz (default: $POSEBATCH_MODEL_DATA; with --local: the uploaded model)",
    )
    parser.add_argument(
        "--image",
        default=defaults.image_uri,
        help="ECR image URI of the container (default: $POSEBATCH_IMAGE_URI; $POSE_IMAGE_URI is deprecated)",
    )
    parser.add_argument(
        "--role",
        default=defaults.role_arn,
        help="SageMaker execution role ARN (default: $POSEBATCH_ROLE_ARN; $POSE_SAGEMAKER_ROLE is deprecated)",
    )
    parser.add_argument("--success-topic", help="SNS topic ARN for success notifications")
    parser.add_argument("--error-topic", help="SNS topic ARN for error notifications")
    parser.add_argument("--instance-type", default="ml.g5.xlarge")
    parser.add_argument("--instances", type=int, default=1, help="initial instance count")
    parser.add_argument("--max-concurrent", type=int, default=4, help="MaxConcurrentInvocationsPerInstance")
    parser.add_argument("--max-instances", type=int, default=2, help="autoscaling maximum")
    parser.add_argument("--no-autoscaling", action="store_true", help="skip the scale-to-zero policies")
    add_local_arguments(parser, what="deploy on")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch import aws
    from batch.async_inference.layout import AsyncLayout
    from batch.deploy.async_endpoint import AsyncEndpointSpec, configure_autoscaling, deploy
    from batch.output_layout import ANNOTATED_FOLDER, KEYPOINTS_FOLDER

    clients: Clients = _use_local_stack(args) if args.local else aws.client
    missing = [name for name in ("model_data", "image", "role") if not getattr(args, name)]
    if missing:
        raise SystemExit(f"missing: {', '.join('--' + m.replace('_', '-') for m in missing)}")
    spec = AsyncEndpointSpec(
        endpoint_name=args.endpoint,
        image_uri=args.image,
        model_data_url=args.model_data,
        execution_role_arn=args.role,
        layout=AsyncLayout.create(args.input, args.output),
        success_topic_arn=args.success_topic,
        error_topic_arn=args.error_topic,
        instance_type=args.instance_type,
        initial_instance_count=args.instances,
        max_concurrent_invocations=args.max_concurrent,
        max_capacity=args.max_instances,
    )
    described = deploy(spec, clients("sagemaker"))
    if not args.no_autoscaling:
        configure_autoscaling(spec, clients("application-autoscaling"), clients("cloudwatch"))
    print(
        json.dumps(
            {
                "endpoint": spec.endpoint_name,
                "status": described["EndpointStatus"],
                "keypoints": spec.layout.output_root + KEYPOINTS_FOLDER + "/",
                "annotated": spec.layout.output_root + ANNOTATED_FOLDER + "/",
                "responses": spec.layout.s3_output_path,
                "failures": spec.layout.s3_failure_path,
            }
        )
    )
    print(
        f"S3 trigger Lambda env: POSEBATCH_ENDPOINT_NAME={spec.endpoint_name} "
        f"POSEBATCH_INPUT_PREFIX={spec.layout.input_prefix} POSEBATCH_OUTPUT_URI={spec.layout.output_root}"
    )
    return 0


def _use_local_stack(args: argparse.Namespace) -> Clients:
    """Point at the running stack: its stand-in and moto take the same calls as AWS. The S3-event
    path (a poller inside the stack's process) is wired by `pose-batch local up` itself."""
    from batch.local.sagemaker.async_deployment import LOCAL_IMAGE, LOCAL_ROLE
    from batch.local.state import read_section, stack_clients

    clients = stack_clients(local_home(args))
    args.model_data = args.model_data or read_section(local_home(args), "model").get("model_data")
    args.image, args.role, args.instance_type = LOCAL_IMAGE, LOCAL_ROLE, "local"
    sns = clients("sns")
    args.success_topic = args.success_topic or sns.create_topic(Name=f"{args.endpoint}-success")["TopicArn"]
    args.error_topic = args.error_topic or sns.create_topic(Name=f"{args.endpoint}-error")["TopicArn"]
    return clients
