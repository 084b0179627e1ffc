"""The Lambda handlers run on Lambda's Python runtime with boto3 only: their import graph must not
reach pydantic, FastAPI or the inference stack (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "pydantic_settings", "fastapi", "uvicorn", "torch", "numpy", "cv2"):
            raise ImportError("not on Lambda: " + name)
sys.meta_path.insert(0, Block())
import {module}
"""


@pytest.mark.parametrize(
    "module",
    [
        "events.s3_trigger",
        "events.transform_completion",
        "events.transform_finalize_pages",
        "events.async_error",
        "events.model_approval",
    ],
)
def test_handler_imports_with_boto3_only(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
