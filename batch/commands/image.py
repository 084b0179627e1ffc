"""`pose-batch image build|push`: the serving image (container/Dockerfile) with docker, podman or finch
(first found), pushed to this account's ECR repository (created with scan on push if needed), logged
in with an ECR authorization token. Without a local engine: CodeBuild and buildspec.yml, see
docs/aws-deploy.md."""

from __future__ import annotations

import argparse
from typing import Any

from batch.commands.common import CommandFailed, UserError

LOCAL_TAG = "posebatch:latest"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("image", help="build or push the serving image", description=__doc__)
    actions = parser.add_subparsers(dest="image_action", required=True)
    build = actions.add_parser("build", help=f"build {LOCAL_TAG} from container/Dockerfile")
    build.add_argument("--platform", default="linux/amd64", help="SageMaker runs linux/amd64")
    build.set_defaults(func=run_build)
    push = actions.add_parser("push", help="build, then push to ECR")
    push.add_argument("--repository", default="posebatch", help="ECR repository (created if needed)")
    push.add_argument("--tag", default="latest")
    push.add_argument("--platform", default="linux/amd64")
    push.add_argument("--no-build", action="store_true", help=f"push the existing {LOCAL_TAG}")
    push.set_defaults(func=run_push)


def run_build(args: argparse.Namespace) -> int:
    from batch.stack.image import ImageError, ImageSetupError, build, find_engine
    from batch.stack.lambda_zip import project_root

    try:
        engine = find_engine()
        build(engine, LOCAL_TAG, project_root(), args.platform)
    except ImageSetupError as exc:
        raise UserError(str(exc)) from None
    except ImageError as exc:
        raise CommandFailed(str(exc)) from None
    print(f"built {LOCAL_TAG}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from batch import aws
    from batch.stack.image import (
        ImageError,
        ImageSetupError,
        build,
        ensure_repository,
        find_engine,
        image_uri,
        push,
        registry_login,
    )
    from batch.stack.lambda_zip import project_root

    try:
        engine = find_engine()  # before any AWS call: no engine, nothing created
        ecr = aws.client("ecr")
        repository = ensure_repository(ecr, args.repository)
        if not args.no_build:
            build(engine, LOCAL_TAG, project_root(), args.platform)
        remote = image_uri(repository, args.tag)
        push(engine, LOCAL_TAG, remote, registry_login(ecr))
    except ImageSetupError as exc:
        raise UserError(str(exc)) from None
    except ImageError as exc:
        raise CommandFailed(str(exc)) from None
    print(f"pushed {remote}")
    print(f"deploy with: pose-batch stack deploy --image {remote} --model ...")
    return 0
