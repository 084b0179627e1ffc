"""`pose-batch models list|approve|reject`: the model registry's packages, on AWS or (--local) on the running
`pose-batch local up` stack.

  pose-batch models list [--group G] [--json]     every version: status, AP, dataset, base model
  pose-batch models approve ARN|latest [--group G] approve it: it becomes the default model for transform,
                                                    and the stack's endpoints roll to it (no request dropped)
  pose-batch models reject ARN                      reject it (nothing is undeployed)

Approving emits SageMaker's "Model Package State Change" event; the stack's approval handler (a Lambda on
AWS, a poller locally) does the deployment a few moments later. `approve` and `reject` print one JSON
object. An unknown ARN, or `latest` in an empty group, exits 2."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from batch.commands.common import UserError, add_local_arguments, local_home

if TYPE_CHECKING:
    from batch.aws import Clients


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, approve or reject model packages of the registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the packages of a group, oldest first")
    _common(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object: the group, its default, the packages")
    listing.set_defaults(func=run_list)
    approve = actions.add_parser("approve", help="approve a package (it deploys)")
    approve.add_argument("package", metavar="ARN|latest", help="a model package ARN, or `latest` (the newest version)")
    _common(approve)
    approve.add_argument("--description", help="ApprovalDescription: why")
    approve.set_defaults(func=run_approve)
    reject = actions.add_parser("reject", help="reject a package")
    reject.add_argument("package", metavar="ARN", help="a model package ARN")
    _common(reject)
    reject.add_argument("--description", help="ApprovalDescription: why")
    reject.set_defaults(func=run_reject)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group", help="model package group (default: $POSEBATCH_MODEL_PACKAGE_GROUP, the local stack's, or posebatch)"
    )
    add_local_arguments(parser)


def _clients(args: argparse.Namespace) -> Clients:
    from batch import aws

    if args.local:
        from batch.local.state import stack_clients

        return stack_clients(local_home(args))
    return aws.client


def run_list(args: argparse.Namespace) -> int:
    from batch.commands.model_choice import group_of
    from batch.registry import default_model
    from batch.registry.packages import RegistryError, list_packages

    clients, group = _clients(args), group_of(args)
    try:
        found = list_packages(clients("sagemaker"), group)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    default = default_model.read(clients("ssm"), group)
    default_arn = default.model_package if default else None
    if args.json:
        packages = [{**p.as_dict(), "default": p.arn == default_arn} for p in found]
        print(json.dumps({"group": group, "default_model": default_arn, "packages": packages}))
        return 0
    if not found:
        print(f"group {group}: no model packages yet")
        return 0
    print(f"{'version':>7}  {'status':<21}  {'AP':>6}  {'created':<19}  dataset / base model")
    for package in found:
        ap = f"{package.ap:.3f}" if package.ap is not None else "-"
        marker = "  <- default" if package.arn == default_arn else ""
        print(
            f"{package.version:>7}  {package.status:<21}  {ap:>6}  {package.created[:19]:<19}  "
            f"{package.dataset or '-'} / {package.base_model or '-'}{marker}"
        )
        print(f"{'':>7}  {package.arn}")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    from batch.registry.packages import APPROVED

    return _set(args, APPROVED, allow_latest=True)


def run_reject(args: argparse.Namespace) -> int:
    from batch.registry.packages import REJECTED

    return _set(args, REJECTED, allow_latest=False)


def _set(args: argparse.Namespace, status: str, *, allow_latest: bool) -> int:
    from batch.commands.model_choice import group_of
    from batch.registry.packages import LATEST, RegistryError, resolve, set_approval

    if args.package != LATEST and not args.package.startswith("arn:"):
        what = "a model package ARN or `latest`" if allow_latest else "a model package ARN"
        raise UserError(f"{args.package!r} is not {what} (see `pose-batch models list`)")
    if args.package == LATEST and not allow_latest:
        raise UserError("reject names the package by its ARN (see `pose-batch models list`)")
    sagemaker = _clients(args)("sagemaker")
    try:
        package = resolve(sagemaker, args.package, group_of(args))
        updated = set_approval(sagemaker, package.arn, status, args.description)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"model_package": updated.arn, "name": updated.name, "status": updated.status}))
    return 0
