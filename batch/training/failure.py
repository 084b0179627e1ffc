"""SageMaker's failure contract: a one-paragraph reason in /opt/ml/output/failure (it becomes the job's
FailureReason) and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

MAX_REASON = 1024  # FailureReason's length


class TrainingRefused(Exception):
    """A job this container will not run as asked (the message says what to change)."""


def reason(exc: BaseException) -> str:
    """One paragraph: the exception's type and message, whitespace folded, cut to FailureReason's size."""
    text = " ".join(str(exc).split()) or "no message"
    kind = type(exc).__name__
    return (text if isinstance(exc, TrainingRefused) else f"{kind}: {text}")[:MAX_REASON]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:MAX_REASON] + "\n")
