"""The /opt/ml layout of a SageMaker training job, read once: hyperparameters (strings), the resource
config (hosts), the data channels, and the paths the job writes (model, failure file, checkpoints).
Outside SageMaker (the local stand-in, tests) `POSE_ML_ROOT` moves the whole layout."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.settings import JobSettings

DEFAULT_JOB_NAME = "posebatch-training"


class LayoutError(ValueError):
    """The layout is not what SageMaker writes (unreadable JSON, a channel missing)."""


@dataclass(frozen=True)
class TrainingEnvironment:
    root: Path
    job_name: str
    hyperparameters: dict[str, str] = field(default_factory=dict)
    hosts: tuple[str, ...] = ("algo-1",)
    current_host: str = "algo-1"
    channels: dict[str, Path] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def work_dir(self) -> Path:
        """Scratch space for the run (converted labels, Ultralytics' run folder); not uploaded."""
        return self.root / "work"

    def channel(self, name: str) -> Path | None:
        return self.channels.get(name)

    @classmethod
    def load(cls, settings: JobSettings | None = None) -> TrainingEnvironment:
        settings = settings or JobSettings.from_env()
        root = settings.ml_root
        config = root / "input" / "config"
        hyperparameters = _json(config / "hyperparameters.json", {})
        resources = _json(config / "resourceconfig.json", {})
        declared = _json(config / "inputdataconfig.json", {})
        data = root / "input" / "data"
        names = set(declared) | ({p.name for p in data.iterdir() if p.is_dir()} if data.is_dir() else set())
        hosts = tuple(str(h) for h in resources.get("hosts") or ()) or ("algo-1",)
        return cls(
            root=root,
            job_name=settings.training_job_name or DEFAULT_JOB_NAME,
            hyperparameters={str(k): str(v) for k, v in hyperparameters.items()},
            hosts=hosts,
            current_host=str(resources.get("current_host") or hosts[0]),
            channels={name: data / name for name in sorted(names)},
        )


def _json(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    if not path.is_file():
        return default
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(content, dict):
        raise LayoutError(f"{path} must hold a JSON object")
    return content
