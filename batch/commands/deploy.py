"""`pose-batch deploy`: deploy an endpoint on AWS or (`--local`) on the running `pose-batch local up` stack.

  pose-batch deploy --realtime [--serverless] [--model CKPT.pt|model.tar.gz|s3://...|--model-package ARN]
  pose-batch deploy --input s3://B/in/ --output s3://B/out/        # the asynchronous endpoint

--realtime: a real-time endpoint (instance-backed, or serverless with --serverless) that `pose-batch invoke`
and any SageMaker runtime client call; prints one JSON object: `endpoint_name`, `kind`, `status`, `model`
(what it serves) and `follows_approvals`. Deployed again with another model, the endpoint is updated in
place (blue/green, no request dropped).

Without --realtime: the asynchronous endpoint (model, endpoint config with AsyncInferenceConfig,
endpoint) and its scale-to-zero autoscaling; with --local the S3-event path is `local up`'s.

The model: --model-package (approved; `latest-approved` follows the registry), --model (a checkpoint or
model.tar.gz is packaged and uploaded: to the local stack's bucket, or to the --stack's data bucket under
models/), --model-data, else the group's approved default model (the endpoint then follows approvals:
approving a package rolls it), else $POSEBATCH_MODEL_DATA or the local stack's model. On AWS, --stack NAME
takes the image, the role and the bucket from that stack."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from batch.commands.common import CommandFailed, UserError, add_local_arguments, local_home
from batch.commands.model_choice import add_model_package_arguments, choose
from batch.orchestration_settings import DeploymentDefaults

if TYPE_CHECKING:
    from batch.aws import Clients
    from batch.registry.selection import ModelChoice

MODELS_PREFIX = "models/"  # uploads in the stack's data bucket, which its SageMaker role may read


def register(subparsers: Any) -> None:
    defaults = DeploymentDefaults.from_env()
    parser = subparsers.add_parser(
        "deploy",
        aliases=["deploy-async"],
        help="deploy a real-time, serverless or asynchronous endpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--realtime", action="store_true", help="a real-time endpoint (default: asynchronous)")
    parser.add_argument("--serverless", action="store_true", help="with --realtime: serverless (CPU, scales to zero)")
    parser.add_argument(
        "--endpoint", help="endpoint name (default: posebatch-async, posebatch-realtime or posebatch-serverless)"
    )
    parser.add_argument("--input", help="async: input root s3://bucket/prefix/ (what triggers inference)")
    parser.add_argument("--output", help="async: output root s3://bucket/prefix/ (keypoints/, annotated/, _async/)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help="a .pt checkpoint or model.tar.gz (packaged and uploaded), or an s3:// URI")
    model.add_argument("--model-data", help="s3://.../model.tar.gz")
    add_model_package_arguments(parser, exclusive_with=model)
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
    parser.add_argument("--stack", help="AWS: take the image, the role and the model bucket from this stack")
    parser.add_argument("--instance-type", default="ml.g5.xlarge")
    parser.add_argument("--instances", type=int, default=1, help="initial instance count")
    parser.add_argument(
        "--memory-mb", type=int, default=2048, help="serverless: MemorySizeInMB (1024-6144, 1 GB steps)"
    )
    parser.add_argument("--max-concurrency", type=int, default=5, help="serverless: MaxConcurrency (1-200)")
    parser.add_argument("--success-topic", help="async: SNS topic ARN for success notifications")
    parser.add_argument("--error-topic", help="async: SNS topic ARN for error notifications")
    parser.add_argument("--max-concurrent", type=int, default=4, help="async: MaxConcurrentInvocationsPerInstance")
    parser.add_argument("--max-instances", type=int, default=2, help="async: autoscaling maximum")
    parser.add_argument("--no-autoscaling", action="store_true", help="async: skip the scale-to-zero policies")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the endpoint")
    add_local_arguments(parser, what="deploy on")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch import aws

    if args.serverless and not args.realtime:
        raise UserError("--serverless is a kind of real-time endpoint: add --realtime")
    bucket: str | None = None
    clients: Clients = aws.client
    fallback = DeploymentDefaults.from_env().model_data
    if args.local:
        clients, bucket, fallback = _use_local_stack(args)
    elif args.stack:
        bucket = _use_stack(args)
    if not args.role:
        raise UserError("missing --role (or POSEBATCH_ROLE_ARN, or --stack NAME)")
    if args.model:
        args.model_data = _uploaded(clients, bucket, args.model)
    choice = choose(args, clients, image_uri=args.image, model_data=args.model_data, fallback_model_data=fallback)
    if args.realtime:
        return _deploy_realtime(args, clients, choice)
    return _deploy_async(args, clients, choice)


def _deploy_realtime(args: argparse.Namespace, clients: Clients, choice: ModelChoice) -> int:
    from batch.deploy.realtime_endpoint import RealtimeEndpointSpec, Serverless, deploy

    try:
        serverless = Serverless(args.memory_mb, args.max_concurrency) if args.serverless else None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    spec = RealtimeEndpointSpec(
        endpoint_name=args.endpoint or ("posebatch-serverless" if serverless else "posebatch-realtime"),
        model=choice.model,
        execution_role_arn=args.role,
        instance_type=args.instance_type,
        instance_count=args.instances,
        serverless=serverless,
        follows_group=choice.follows_group,
    )
    try:
        described = deploy(spec, clients("sagemaker"), wait_s=args.timeout, poll_s=1.0 if args.local else 10.0)
    except (RuntimeError, TimeoutError) as exc:  # it ran and did not come up
        raise CommandFailed(str(exc)) from None
    print(
        json.dumps(
            {
                "endpoint_name": spec.endpoint_name,
                "kind": spec.kind,
                "status": described["EndpointStatus"],
                "model": {**choice.model.as_dict(), "model_name": spec.resource_name, "origin": choice.origin},
                "follows_approvals": choice.follows_group,
            }
        )
    )
    return 0


def _deploy_async(args: argparse.Namespace, clients: Clients, choice: ModelChoice) -> int:
    from batch.async_inference.layout import AsyncLayout
    from batch.deploy.async_endpoint import AsyncEndpointSpec, configure_autoscaling, deploy
    from batch.output_layout import ANNOTATED_FOLDER, KEYPOINTS_FOLDER
    from batch.registry.approval import follow_tags

    if not args.input or not args.output:
        raise UserError("an asynchronous endpoint needs --input and --output (or deploy --realtime)")
    served = choice.model
    spec = AsyncEndpointSpec(
        endpoint_name=args.endpoint or "posebatch-async",
        image_uri=served.image_uri,
        model_data_url=served.model_data_url,
        model_package_arn=served.model_package_arn,
        execution_role_arn=args.role,
        layout=AsyncLayout.create(args.input, args.output),
        success_topic_arn=args.success_topic,
        error_topic_arn=args.error_topic,
        instance_type=args.instance_type,
        initial_instance_count=args.instances,
        max_concurrent_invocations=args.max_concurrent,
        max_capacity=args.max_instances,
        tags=follow_tags(choice.follows_group) if choice.follows_group else [],
    )
    described = deploy(spec, clients("sagemaker"), wait_s=args.timeout)
    if not args.no_autoscaling:
        configure_autoscaling(spec, clients("application-autoscaling"), clients("cloudwatch"))
    print(
        json.dumps(
            {
                "endpoint": spec.endpoint_name,
                "endpoint_name": spec.endpoint_name,
                "status": described["EndpointStatus"],
                "model": {**served.as_dict(), "origin": choice.origin},
                "follows_approvals": choice.follows_group,
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


def _uploaded(clients: Clients, bucket: str | None, model: str) -> str:
    """`--model`: an s3:// URI as given; a checkpoint or model.tar.gz packaged and uploaded to `bucket`."""
    from batch.stack.artifacts import model_artifact

    if model.startswith("s3://"):
        return model
    if bucket is None:
        raise UserError("--model FILE needs a bucket to upload to: add --stack NAME (or --local), or give s3://")
    try:
        return str(model_artifact(clients("s3"), bucket, model, prefix=MODELS_PREFIX))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _use_stack(args: argparse.Namespace) -> str:
    """AWS: the image, role and data bucket of a deployed stack (`pose-batch stack deploy`)."""
    from batch import aws
    from batch.stack.cloudformation import stack_outputs

    outputs = stack_outputs(aws.client("cloudformation"), args.stack)
    args.image = args.image or outputs.get("ImageUri")
    args.role = args.role or outputs.get("SageMakerExecutionRoleArn")
    args.group = args.group or outputs.get("ModelPackageGroupName")
    return str(outputs["DataBucketName"])


def _use_local_stack(args: argparse.Namespace) -> tuple[Clients, str, str | None]:
    """Point at the running stack: its stand-in and moto take the same calls as AWS. The S3-event path
    (a poller inside the stack's process) is wired by `pose-batch local up` itself."""
    from batch.local.sagemaker.async_deployment import LOCAL_IMAGE, LOCAL_ROLE
    from batch.local.state import read_section, read_state, stack_clients

    home = local_home(args)
    clients = stack_clients(home)
    args.image, args.role, args.instance_type = LOCAL_IMAGE, LOCAL_ROLE, "local"
    if not args.realtime:
        endpoint = args.endpoint or "posebatch-async"
        sns = clients("sns")
        args.success_topic = args.success_topic or sns.create_topic(Name=f"{endpoint}-success")["TopicArn"]
        args.error_topic = args.error_topic or sns.create_topic(Name=f"{endpoint}-error")["TopicArn"]
    return clients, str(read_state(home)["bucket"]), read_section(home, "model").get("model_data")
