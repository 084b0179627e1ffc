"""Training hyperparameters: strings in (SageMaker's hyperparameters.json holds only strings; so does
`--hyperparameter KEY=VALUE`), typed Ultralytics train arguments out.

Every Ultralytics train argument is accepted under its own name (`lr0=0.002`, `mosaic=0`, `freeze=10`,
`optimizer=AdamW`), converted with Ultralytics' own rules (`smart_value`, then `check_cfg` for the types and
ranges). A name Ultralytics does not know is refused with the nearest ones; the few that the container
sets itself (where the data, the base model and the run live) are refused with the reason.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

# Set by the container from the /opt/ml layout, never by a hyperparameter.
OWNED = {
    "data": "the dataset is the `dataset` channel (pose-batch train --data)",
    "model": "the base checkpoint is the `model` channel (pose-batch train --model)",
    "project": "the run lives under the container's working folder",
    "name": "the run lives under the container's working folder",
    "save_dir": "the run lives under the container's working folder",
    "exist_ok": "the run lives under the container's working folder",
    "resume": "the container resumes from /opt/ml/checkpoints by itself",
    "mode": "the container trains",
    "task": "the container trains pose models",
    "cfg": "pass each argument as its own hyperparameter",
}


class HyperparameterError(ValueError):
    """A hyperparameter the trainer cannot take; the message names it and says why."""


def known_arguments() -> dict[str, Any]:
    """Ultralytics' arguments and their defaults (the packaged default.yaml)."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    return dict(DEFAULT_CFG_DICT)


def parse(raw: Mapping[str, str]) -> dict[str, Any]:
    """Typed train arguments from string values; HyperparameterError listing every bad one."""
    from ultralytics.cfg import check_cfg, smart_value

    known = known_arguments()
    problems: list[str] = []
    typed: dict[str, Any] = {}
    for key, text in raw.items():
        if key in OWNED:
            problems.append(f"{key}: not a hyperparameter here: {OWNED[key]}")
        elif key not in known:
            close = difflib.get_close_matches(key, list(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(f"{key}: not an Ultralytics train argument{hint}")
        else:
            typed[key] = smart_value(str(text))
    for key, value in typed.items():
        try:
            check_cfg({key: value}, hard=True)
        except (TypeError, ValueError) as exc:
            problems.append(f"{key}={raw[key]}: {exc}")
    if problems:
        raise HyperparameterError("; ".join(problems))
    return typed


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` items (the CLI's --hyperparameter) as the string map SageMaker carries."""
    result: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HyperparameterError(f"--hyperparameter expects KEY=VALUE, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def as_strings(typed: Mapping[str, Any]) -> dict[str, str]:
    """What goes into CreateTrainingJob's HyperParameters: every value a string (lists in Python syntax,
    which `smart_value` reads back)."""
    return {key: str(value) for key, value in typed.items()}
