"""The training pipeline (SageMaker Pipelines): train -> evaluate -> gate (AP >= --min-ap, and with
--must-beat-baseline also AP > the baseline's) -> register a PendingManualApproval model package, else a
Fail step naming the AP and the bar. On AWS the pipeline is upserted and started; with --local the same
definition runs on the running `pose-batch local up` stack.

  pose-batch pipeline run --local --data my-dataset/ --min-ap 0.4 --epochs 10 --wait
  pose-batch pipeline run --data s3://BUCKET/datasets/dogs/ --min-ap 0.5 --must-beat-baseline --wait \\
      --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/posebatch:latest --role-arn arn:aws:iam::ACCOUNT:role/...

stdout: one JSON object: pipeline_execution, status, steps (name, status, failure_reason), metrics (ap,
baseline_ap), model_package (ARN or null), approval (or null). Exit 1 when the execution did not succeed
(an AP below the bar among them), 2 for a bad dataset or flag (before anything starts). docs/pipeline.md."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from batch.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    UserError,
    add_local_arguments,
    follow_or_detach,
    local_home,
)
from batch.orchestration_settings import DeploymentDefaults
from batch.s3_uri import S3Uri


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="the training pipeline: train, evaluate, gate on AP, register",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="pipeline_action", required=True, metavar="ACTION")
    run_parser = actions.add_parser(
        "run", help="upsert the pipeline and start it", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    defaults = DeploymentDefaults.from_env()
    run_parser.add_argument("--data", required=True, help="dataset folder or s3:// prefix (YOLO pose or COCO)")
    run_parser.add_argument("--min-ap", type=_unit_float, required=True, help="the bar: keypoint AP (0..1)")
    run_parser.add_argument(
        "--must-beat-baseline", action="store_true", help="also require AP above the baseline's (base model or "
        "the group's latest approved package)",
    )  # fmt: skip
    run_parser.add_argument("--epochs", type=_positive_int, help="Ultralytics' epochs (default 100)")
    run_parser.add_argument("--imgsz", type=_positive_int, help="training and evaluation image size (default 640)")
    run_parser.add_argument(
        "--model", help="base checkpoint: a .pt, an Ultralytics model name, or s3://... (as `pose-batch train`)"
    )
    run_parser.add_argument(
        "--hyperparameter", action="append", default=[], metavar="KEY=VALUE",
        help="any Ultralytics train argument (repeatable)",
    )  # fmt: skip
    add_local_arguments(run_parser, what="run on")
    run_parser.add_argument("--wait", action="store_true", help="follow the execution to its end (stderr)")
    run_parser.add_argument("--group", help="model package group (default: the stack's, or posebatch)")
    run_parser.add_argument("--output", help="s3://BUCKET/prefix/ for the pipeline's files")
    run_parser.add_argument("--image-uri", default=defaults.image_uri, help="the PoseBatch image (ECR URI)")
    run_parser.add_argument("--role-arn", default=defaults.role_arn, help="the jobs' execution role")
    run_parser.add_argument("--pipeline-role-arn", help="the pipeline's role (default: --role-arn)")
    run_parser.add_argument("--instance-type", default="ml.g5.xlarge", help="training instance type")
    run_parser.add_argument("--evaluation-instance-type", default="ml.g5.xlarge", help="evaluation instance type")
    run_parser.add_argument("--pipeline-name", default=None, help="default: posebatch-training")
    run_parser.add_argument("--poll-seconds", type=float, help="status poll interval with --wait")
    run_parser.set_defaults(func=run)


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1 (an AP)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from batch.commands import train as train_command
    from batch.commands.model_choice import group_of
    from batch.datasets.problems import DatasetError
    from batch.pipeline import definition
    from batch.pipeline import run as flow
    from batch.training import launch

    try:  # everything that can be checked before AWS or the stack is
        merged = launch.merged_hyperparameters({"epochs": args.epochs, "imgsz": args.imgsz}, args.hyperparameter)
        epochs, imgsz = int(merged.pop("epochs", "100")), int(merged.pop("imgsz", "640"))
        local_data = not args.data.startswith("s3://")
        summary = launch.check_dataset(args.data, None) if local_data else ""
        clients = train_command.stack_or_aws_clients(args)
        s3, sagemaker = clients("s3"), clients("sagemaker")
        summary = summary or launch.check_dataset(args.data, s3)
        model = train_command.base_model(args)
        image_uri = train_command.required(args.image_uri or train_command.local_default(args, "image_uri"),
                                            "--image-uri")  # fmt: skip
        role_arn = train_command.required(args.role_arn or train_command.local_default(args, "role_arn"),
                                           "--role-arn")  # fmt: skip
        root = _root(args)
    except (launch.LaunchError, DatasetError) as exc:
        raise UserError(str(exc)) from None
    print(f"dataset: {summary}", file=sys.stderr)
    group = group_of(args)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    inputs = S3Uri.parse(root, allow_empty_key=True).child(f"inputs/{run_id}/")
    dataset = args.data if not local_data else launch.upload_folder(s3, Path(args.data), inputs.child("dataset/"))
    base_model = model if model.startswith("s3://") else launch.upload_file(s3, Path(model), inputs.child("model/"))
    baseline = _baseline(sagemaker, group) or base_model
    spec = definition.PipelineSpec(
        image_uri=image_uri,
        role_arn=role_arn,
        output_path=root,
        model_package_group=group,
        region=sagemaker.meta.region_name,
        name=args.pipeline_name or definition.PIPELINE_NAME,
        hyperparameters=merged,
        must_beat_baseline=args.must_beat_baseline,
    )
    parameters = definition.parameters_request(
        {
            "DatasetUri": dataset,
            "BaseModelUri": base_model,
            "BaselineModelUri": baseline,
            "Epochs": epochs,
            "ImageSize": imgsz,
            "TrainingInstanceType": args.instance_type,
            "EvaluationInstanceType": args.evaluation_instance_type,
            "MinAP": args.min_ap,
        }
    )
    flow.upsert(sagemaker, spec.name, definition.definition_json(spec), args.pipeline_role_arn or role_arn)
    execution = flow.start(sagemaker, spec.name, parameters)
    print(f"pipeline {spec.name}: execution {execution} started (baseline {baseline})", file=sys.stderr)
    if not args.wait:
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution)
        print(json.dumps(flow.result(sagemaker, s3, described)))
        return 0
    poll_s = args.poll_seconds or (1.0 if args.local else 30.0)
    described = follow_or_detach(
        lambda: flow.follow(sagemaker, execution, poll_s=poll_s), f"pipeline execution {execution}", local=args.local
    )
    if described is None:
        return EXIT_INTERRUPTED
    print(json.dumps(flow.result(sagemaker, s3, described)))
    return 0 if described["PipelineExecutionStatus"] == "Succeeded" else EXIT_FAILED


def _root(args: argparse.Namespace) -> str:
    """Where the pipeline's files go: --output, the stack's bucket, or the dataset's bucket."""
    from batch.training.launch import LaunchError

    if args.output:
        if not args.output.startswith("s3://"):
            raise LaunchError(f"--output {args.output}: give an s3://BUCKET/prefix/ URI")
        return str(args.output.rstrip("/") + "/")
    if args.local:
        from batch.local.state import read_state

        return f"s3://{read_state(local_home(args))['bucket']}/pipeline/"
    if args.data.startswith("s3://"):
        return f"s3://{S3Uri.parse(args.data, allow_empty_key=True).bucket}/posebatch-pipeline/"
    raise LaunchError("say where the pipeline writes on AWS: --output s3://BUCKET/prefix/ (a local --data is "
                      "uploaded there)")  # fmt: skip


def _baseline(sagemaker: Any, group: str) -> str | None:
    """The group's latest approved package's model data (what the new model must beat), if any."""
    from batch.registry.packages import LATEST_APPROVED, RegistryError, resolve

    try:
        return resolve(sagemaker, LATEST_APPROVED, group).model_data_url
    except RegistryError:
        return None
