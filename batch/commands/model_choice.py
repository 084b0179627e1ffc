"""The model arguments `transform`, `deploy` and `submit` share (`--model-package ARN|latest-approved`,
`--group`), and their resolution by `batch.registry.selection`'s rule, with registry mistakes as user
errors (exit 2)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from batch.commands.common import UserError
from batch.orchestration_settings import model_package_group

if TYPE_CHECKING:
    from batch.aws import Clients
    from batch.registry.selection import ModelChoice


def add_model_package_arguments(parser: argparse.ArgumentParser, exclusive_with: Any = None) -> None:
    """`--model-package` (in `exclusive_with`, a mutually exclusive group of the other model flags) and `--group`."""
    (exclusive_with or parser).add_argument(
        "--model-package",
        metavar="ARN|latest-approved",
        help="serve a model package of the registry (approved); default: the group's approved default model",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="model package group (default: $POSEBATCH_MODEL_PACKAGE_GROUP, the local stack's, or posebatch)",
    )


def group_of(args: argparse.Namespace) -> str:
    """`--group`, else the local stack's group (with --local), else the configured or default one."""
    if args.group:
        return str(args.group)
    if getattr(args, "local", False):
        from batch.commands.common import local_home
        from batch.local.state import read_section

        found = read_section(local_home(args), "registry").get("group")
        if found:
            return found
    return model_package_group()


def choose(
    args: argparse.Namespace,
    clients: Clients,
    *,
    image_uri: str | None,
    model_data: str | None,
    fallback_model_data: str | None,
) -> ModelChoice:
    """The model to serve, said on stderr; `UserError` when there is none or the package cannot be used."""
    from batch.registry.packages import RegistryError
    from batch.registry.selection import choose_model

    try:
        choice = choose_model(
            sagemaker=clients("sagemaker"),
            ssm=clients("ssm"),
            group=group_of(args),
            image_uri=image_uri,
            model_data=model_data,
            model_package=args.model_package,
            fallback_model_data=fallback_model_data,
        )
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    print(f"model: {choice.origin} ({choice.model.model_data_url})", file=sys.stderr)
    return choice
