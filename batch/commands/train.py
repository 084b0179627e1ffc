"""Fine-tune a pose model on your keypoint data as a SageMaker training job on the PoseBatch image, or
(--local) on the running `pose-batch local up` stack. The dataset (a YOLO pose folder with data.yaml, or a
COCO keypoints folder), the hyperparameters and the base checkpoint are checked before any job starts.

  pose-batch train --local --data my-dataset/ --model yolo11n-pose.pt --epochs 10 --wait
  pose-batch train --data s3://BUCKET/datasets/dogs/ --output s3://BUCKET/training/ --epochs 50 --wait \\
      --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/posebatch:latest --role-arn arn:aws:iam::ACCOUNT:role/...

stdout: one JSON object: training_job, status, model_data (the model.tar.gz that `transform --model-data`
and `deploy` take as it is), metrics, and failure_reason when it failed. Every Ultralytics train argument is
a --hyperparameter KEY=VALUE; fine-tuning defaults keep the pretrained model's accuracy (docs/training.md)."""

from __future__ import annotations

import argparse
import json
import sys
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


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a pose model as a (local) SageMaker training job",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = DeploymentDefaults.from_env()
    parser.add_argument("--data", required=True, help="dataset folder or s3:// prefix (YOLO pose or COCO keypoints)")
    parser.add_argument(
        "--model",
        help="base checkpoint: a .pt, an Ultralytics model name, or s3://.../model.tar.gz (default: $POSE_MODEL; "
        "with --local the stack's model; else yolo11n-pose.pt, downloaded by Ultralytics)",
    )
    parser.add_argument("--epochs", type=int, help="Ultralytics' epochs (default 100)")
    parser.add_argument("--imgsz", type=int, help="training image size (default 640)")
    parser.add_argument("--batch", type=int, help="batch size over all GPUs (default 16)")
    parser.add_argument(
        "--hyperparameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any Ultralytics train argument, e.g. lr0=0.005 or mosaic=0 (repeatable)",
    )
    add_local_arguments(parser, what="train on")
    parser.add_argument(
        "--output",
        help="s3://BUCKET/prefix/ for the job's files (default with --local: the stack's bucket), or a local "
        "folder to copy model.tar.gz into (needs --wait)",
    )
    parser.add_argument("--wait", action="store_true", help="wait for the job to end (progress on stderr)")
    parser.add_argument("--image-uri", default=defaults.image_uri, help="the PoseBatch image (ECR URI)")
    parser.add_argument("--role-arn", default=defaults.role_arn, help="SageMaker execution role")
    parser.add_argument("--instance-type", default="ml.g5.xlarge", help="one instance; all of its GPUs are used")
    parser.add_argument("--job-name", help="default: posebatch-train-<time>-<random>")
    parser.add_argument("--max-runtime-s", type=int, default=86400, help="StoppingCondition.MaxRuntimeInSeconds")
    parser.add_argument("--spot", action="store_true", help="managed spot training (resumes from its checkpoints)")
    parser.add_argument("--poll-seconds", type=float, help="status poll interval with --wait")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch.datasets.problems import DatasetError
    from batch.training import launch

    try:  # what can be checked without AWS first: a mistake costs nothing
        hyperparameters = launch.merged_hyperparameters(
            {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch}, args.hyperparameter
        )
        local_data = not args.data.startswith("s3://")
        summary = launch.check_dataset(args.data, None) if local_data else ""
        clients = stack_or_aws_clients(args)
        s3, sagemaker = clients("s3"), clients("sagemaker")
        summary = summary or launch.check_dataset(args.data, s3)
        model = base_model(args)
        output_path, copy_to = _output(args)
        request = launch.TrainRequest(
            data=args.data,
            model=model,
            output_path=output_path,
            image_uri=required(args.image_uri or local_default(args, "image_uri"), "--image-uri"),
            role_arn=required(args.role_arn or local_default(args, "role_arn"), "--role-arn"),
            hyperparameters=hyperparameters,
            job_name=args.job_name,
            instance_type=args.instance_type,
            max_runtime_s=args.max_runtime_s,
            spot=args.spot,
        )
    except (launch.LaunchError, DatasetError) as exc:
        raise UserError(str(exc)) from None
    print(f"dataset: {summary}", file=sys.stderr)
    name = launch.launch(request, s3=s3, sagemaker=sagemaker)
    print(f"training job {name} created", file=sys.stderr)
    if not args.wait:
        print(json.dumps(launch.result(sagemaker.describe_training_job(TrainingJobName=name))))
        return 0
    poll_s = args.poll_seconds or (1.0 if args.local else 15.0)
    described = follow_or_detach(
        lambda: launch.follow(sagemaker, name, poll_s=poll_s), f"training job {name}", local=args.local
    )
    if described is None:
        return EXIT_INTERRUPTED
    model_data = None
    if copy_to is not None and described["TrainingJobStatus"] == "Completed":
        model_data = str(launch.download_model(s3, described["ModelArtifacts"]["S3ModelArtifacts"], copy_to))
    print(json.dumps(launch.result(described, model_data)))
    return 0 if described["TrainingJobStatus"] == "Completed" else EXIT_FAILED


def stack_or_aws_clients(args: argparse.Namespace) -> Any:
    from batch import aws

    if args.local:
        from batch.local.state import stack_clients

        return stack_clients(local_home(args))
    return aws.client


def local_default(args: argparse.Namespace, what: str) -> str | None:
    if not args.local:
        return None
    from batch.transform.launcher import LOCAL_IMAGE_URI, LOCAL_ROLE_ARN

    return {"image_uri": LOCAL_IMAGE_URI, "role_arn": LOCAL_ROLE_ARN}[what]


def required(value: str | None, flag: str) -> str:
    from batch.training.launch import LaunchError

    if not value:
        raise LaunchError(f"missing {flag} (or its POSEBATCH_* variable)")
    return value


def base_model(args: argparse.Namespace) -> str:
    """A local .pt (checked to be a pose model now) or an s3:// URI (checked by the job)."""
    from batch.settings import Settings

    given = args.model or Settings.from_env().pose_model
    if given and given.startswith("s3://"):
        return str(given)
    if not given and args.local:
        from batch.local.state import read_section

        stack_model = read_section(local_home(args), "model").get("model_data")
        if stack_model:
            return str(stack_model)
    from batch.commands.local import check_pose_checkpoint
    from batch.model_package import checkpoint_from

    checkpoint = checkpoint_from(given)
    check_pose_checkpoint(checkpoint)
    return str(checkpoint)


def _output(args: argparse.Namespace) -> tuple[str, Path | None]:
    """(S3OutputPath, the local folder model.tar.gz is copied into, if any)."""
    from batch.training.launch import LaunchError

    given = args.output
    if given and given.startswith("s3://"):
        return given, None
    copy_to = Path(given).expanduser() if given else None
    if copy_to is not None and not args.wait:
        raise LaunchError("--output DIR copies the model once the job has ended: add --wait (or give an s3:// URI)")
    if args.local:
        from batch.local.state import read_state

        return f"s3://{read_state(local_home(args))['bucket']}/training/", copy_to
    if args.data.startswith("s3://"):
        from batch.s3_uri import S3Uri

        return f"s3://{S3Uri.parse(args.data, allow_empty_key=True).bucket}/posebatch-training/", copy_to
    raise LaunchError(
        "say where the job writes on AWS: --output s3://BUCKET/prefix/ (a local --data is uploaded there)"
    )
