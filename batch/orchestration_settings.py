"""Every environment name read outside the serving container, in one place: the Lambda handlers
(`events/`), the launcher and the CLI defaults. Standard library only, so the Lambda zip needs
nothing beyond boto3; the container's own settings are `batch.settings.Settings` (pydantic).

Each reader takes a mapping (tests pass one) and defaults to the process environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from batch.output_layout import as_prefix

DEFAULT_REGION = "us-east-1"
DEFAULT_INPUT_PREFIX = "input/"  # the S3 trigger's input prefix unless configured

# S3 trigger (Lambda configuration)
ENDPOINT_NAME = "POSEBATCH_ENDPOINT_NAME"
INPUT_PREFIX = "POSEBATCH_INPUT_PREFIX"
OUTPUT_URI = "POSEBATCH_OUTPUT_URI"
INVOCATION_TIMEOUT_S = "POSEBATCH_INVOCATION_TIMEOUT_S"
REQUEST_TTL_S = "POSEBATCH_REQUEST_TTL_S"
# The trigger queue's maxReceiveCount: on the last receive a failed submission writes the error record.
MAX_RECEIVE_COUNT = "POSEBATCH_MAX_RECEIVE_COUNT"
# Async error handler (Lambda on the endpoint's error topic): bounded retries with backoff.
RETRY_ATTEMPTS = "POSEBATCH_RETRY_ATTEMPTS"
RETRY_BACKOFF_S = "POSEBATCH_RETRY_BACKOFF_S"
# Transform completion (Lambda configuration)
TRANSFORM_TOPIC_ARN = "POSEBATCH_TRANSFORM_TOPIC_ARN"
# Only jobs named with this prefix are finalised and announced (the template's TransformJobPrefix).
TRANSFORM_JOB_PREFIX = "POSEBATCH_TRANSFORM_JOB_PREFIX"
DEFAULT_TRANSFORM_JOB_PREFIX = "posebatch-"  # the launcher's default job names
# The pages queue the completion handler fans the finalisation out to (unset: it finalises in-process).
FINALIZE_QUEUE_URL = "POSEBATCH_FINALIZE_QUEUE_URL"
# The local stack's page invocations at once (on AWS: the template's FinalizeConcurrency).
FINALIZE_CONCURRENCY = "POSEBATCH_FINALIZE_CONCURRENCY"
DEFAULT_LOCAL_FINALIZE_CONCURRENCY = 4
FINALIZE_BUDGET_S = "POSEBATCH_FINALIZE_BUDGET_S"
# What an invocation keeps back from Lambda's remaining time: the page under way and the summary.
FINALIZE_RESERVE_S = 240.0
DEFAULT_FINALIZE_BUDGET_S = 600.0
# CLI defaults for launching jobs and deploying the endpoint. One name per concept; the names
# `pose-batch deploy` used to read are still accepted (deprecated).
IMAGE_URI = "POSEBATCH_IMAGE_URI"
ROLE_ARN = "POSEBATCH_ROLE_ARN"
MODEL_DATA = "POSEBATCH_MODEL_DATA"
DEPRECATED_ALIASES = {IMAGE_URI: "POSE_IMAGE_URI", ROLE_ARN: "POSE_SAGEMAKER_ROLE"}
# The local stack's folder (state file, model, logs), the same from every working directory.
LOCAL_HOME = "POSEBATCH_LOCAL_HOME"
# The model registry: the stack's model package group (the approval Lambda's, and the CLI's default).
MODEL_PACKAGE_GROUP = "POSEBATCH_MODEL_PACKAGE_GROUP"
DEFAULT_MODEL_PACKAGE_GROUP = "posebatch"


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name) or env.get(DEPRECATED_ALIASES.get(name, ""))
    return (value.strip() or None) if value else None


def _optional_int(text: str | None) -> int | None:
    return int(text) if text and text.strip() else None


def child_process_environment(
    overrides: Mapping[str, str], *, path_first: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a process the local stack starts (a stand-in container): this process's, with
    `overrides` on top and `path_first` at the front of PATH."""
    env = _environ(environ)
    return {**env, **overrides, "PATH": f"{path_first}{os.pathsep}{env.get('PATH', '')}"}


def aws_region(environ: Mapping[str, str] | None = None) -> str:
    env = _environ(environ)
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


@dataclass(frozen=True)
class TriggerConfig:
    """The S3 trigger: which endpoint, which inputs, where outputs go."""

    endpoint_name: str
    input_prefix: str = DEFAULT_INPUT_PREFIX
    output_uri: str | None = None
    invocation_timeout_s: int | None = None
    request_ttl_s: int | None = None
    max_receive_count: int | None = None  # None: not behind a queue with a dead-letter queue

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TriggerConfig:
        env = _environ(environ)
        endpoint = env.get(ENDPOINT_NAME, "").strip()
        if not endpoint:
            raise RuntimeError(f"{ENDPOINT_NAME} is not set")
        return cls(
            endpoint_name=endpoint,
            input_prefix=as_prefix(env.get(INPUT_PREFIX, DEFAULT_INPUT_PREFIX)),
            output_uri=env.get(OUTPUT_URI) or None,
            invocation_timeout_s=_optional_int(env.get(INVOCATION_TIMEOUT_S)),
            request_ttl_s=_optional_int(env.get(REQUEST_TTL_S)),
            max_receive_count=_optional_int(env.get(MAX_RECEIVE_COUNT)),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often the async error handler re-invokes a failed inference, and how long it waits first
    (`backoff_s`, doubled each attempt, at most `max_backoff_s`)."""

    attempts: int = 3
    backoff_s: float = 5.0
    max_backoff_s: float = 60.0

    def delay_s(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        env = _environ(environ)
        attempts = _optional_int(env.get(RETRY_ATTEMPTS))
        backoff = env.get(RETRY_BACKOFF_S, "").strip()
        return cls(
            attempts=cls.attempts if attempts is None else max(0, attempts),
            backoff_s=float(backoff) if backoff else cls.backoff_s,
        )


def transform_topic_arn(environ: Mapping[str, str] | None = None) -> str | None:
    """The SNS topic the transform completion handler publishes to; None: do not notify."""
    return _get(_environ(environ), TRANSFORM_TOPIC_ARN)


@dataclass(frozen=True)
class CompletionConfig:
    """The transform completion handler and its page invocations: where they announce, which jobs they
    act on, and where the pages go (None: finalised in the handler's own invocations, one after another)."""

    topic_arn: str | None = None
    job_prefix: str = DEFAULT_TRANSFORM_JOB_PREFIX
    pages_queue_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CompletionConfig:
        env = _environ(environ)
        return cls(
            topic_arn=_get(env, TRANSFORM_TOPIC_ARN),
            job_prefix=_get(env, TRANSFORM_JOB_PREFIX) or DEFAULT_TRANSFORM_JOB_PREFIX,
            pages_queue_url=_get(env, FINALIZE_QUEUE_URL),
        )


def local_finalize_concurrency(environ: Mapping[str, str] | None = None) -> int:
    """How many page invocations the local stack runs at once (`POSEBATCH_FINALIZE_CONCURRENCY`, >= 1)."""
    text = _get(_environ(environ), FINALIZE_CONCURRENCY)
    if not text:
        return DEFAULT_LOCAL_FINALIZE_CONCURRENCY
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{FINALIZE_CONCURRENCY} must be a whole number, at least 1, got {text!r}")
    return int(text)


def finalize_budget_s(remaining_s: float | None = None, environ: Mapping[str, str] | None = None) -> float:
    """Seconds one completion invocation spends finalising pages before it hands over to a continuation:
    `POSEBATCH_FINALIZE_BUDGET_S` if set, else 600; never more than Lambda's remaining time
    (`remaining_s`) less `FINALIZE_RESERVE_S`. Zero still does one page per invocation."""
    text = _get(_environ(environ), FINALIZE_BUDGET_S)
    budget = float(text) if text else DEFAULT_FINALIZE_BUDGET_S
    if remaining_s is not None:
        budget = min(budget, remaining_s - FINALIZE_RESERVE_S)
    return max(0.0, budget)


@dataclass(frozen=True)
class DeploymentDefaults:
    """What the CLI uses when `--image-uri`, `--role-arn`, `--model-data` are not given."""

    image_uri: str | None = None
    role_arn: str | None = None
    model_data: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeploymentDefaults:
        env = _environ(environ)
        return cls(_get(env, IMAGE_URI), _get(env, ROLE_ARN), _get(env, MODEL_DATA))


def model_package_group(environ: Mapping[str, str] | None = None) -> str:
    """The model package group: `POSEBATCH_MODEL_PACKAGE_GROUP`, else `posebatch`."""
    return _get(_environ(environ), MODEL_PACKAGE_GROUP) or DEFAULT_MODEL_PACKAGE_GROUP


def local_stack_home(environ: Mapping[str, str] | None = None) -> Path:
    """Where `pose-batch local up` keeps its state and `--local` commands look for it: $POSEBATCH_LOCAL_HOME,
    else $XDG_STATE_HOME/posebatch, else ~/.local/state/posebatch (per user, absolute)."""
    env = _environ(environ)
    if env.get(LOCAL_HOME, "").strip():
        return Path(env[LOCAL_HOME].strip()).expanduser().resolve()
    state_root = env.get("XDG_STATE_HOME", "").strip() or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(state_root).expanduser().resolve() / "posebatch"
