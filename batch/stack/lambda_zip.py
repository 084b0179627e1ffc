"""The Lambda deployment zip: the handlers and exactly the project modules they import.

The closure is computed from the source (an AST walk of every `import` in the handlers, then in each
project module they reach, plus the `__init__.py` of every package on the way, which Python runs on
import), so it stays right when modules move between `batch/` and `events/`. A module outside the
project must be one that Lambda's Python 3.12 runtime has: the standard library, boto3 or botocore
(and their own dependencies). Anything else (pydantic, numpy, ...) fails packaging with the import
chain that reached it: the handlers stay plain Python, and nothing is bundled silently.
"""

from __future__ import annotations

import ast
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HANDLER_MODULES = (
    "events.s3_trigger",
    "events.transform_completion",
    "events.transform_finalize_pages",
    "events.async_error",
    "events.model_approval",
)
PROJECT_PACKAGES = frozenset({"batch", "events"})
# What the python3.12 Lambda runtime ships besides the standard library (boto3 and its dependencies).
RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
# Standard-library modules of the interpreter running this code that Python 3.12 removed (PEP 594, 632).
_REMOVED_IN_312 = frozenset({"distutils", "imp", "asynchat", "asyncore", "smtpd"})
_STDLIB = frozenset(sys.stdlib_module_names) - _REMOVED_IN_312
# Fixed timestamp: the same sources give the same zip bytes, so CloudFormation sees "no change".
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class UnsupportedImport(RuntimeError):
    """A handler reaches a module the Lambda runtime lacks."""


@dataclass
class Closure:
    """Project modules (dotted name -> file) and the external top-level modules they import."""

    modules: dict[str, Path] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)  # top-level name -> first importer


def module_file(root: Path, name: str) -> Path | None:
    """The source file of a project module or package, None if `name` is not one."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module an import statement in `tree` may load (function-level imports included,
    `if TYPE_CHECKING:` blocks excluded: they never run)."""
    names: list[str] = []
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            names.append(base)
            # `from batch import aws` imports the module batch.aws when there is one.
            names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(root: Path, entry_points: tuple[str, ...] = HANDLER_MODULES) -> Closure:
    """Walk the imports from the entry points; raises `UnsupportedImport` on a module Lambda lacks."""
    closure = Closure()
    pending: list[tuple[str, str]] = [(name, "<handler>") for name in entry_points]
    while pending:
        name, importer = pending.pop()
        top = name.split(".")[0]
        if top not in PROJECT_PACKAGES:
            if top in _STDLIB or top in RUNTIME_PACKAGES:
                closure.external.setdefault(top, importer)
                continue
            raise UnsupportedImport(
                f"{importer} imports {name!r}, which Lambda's python3.12 runtime does not have "
                f"(it ships the standard library and boto3/botocore only). Keep the Lambda handlers' "
                f"import graph to stdlib + boto3, or move that import out of the modules they reach."
            )
        for candidate in _with_parents(name):
            if candidate in closure.modules:
                continue
            path = module_file(root, candidate)
            if path is None:
                if candidate == name and "." in name and module_file(root, name.rsplit(".", 1)[0]):
                    continue  # `from pkg import attribute`: an attribute, not a module
                raise UnsupportedImport(f"{importer} imports {candidate!r}, which is not in {root}")
            closure.modules[candidate] = path
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            pending += [(n, candidate) for n in _imported_names(tree, candidate, path.name == "__init__.py")]
    return closure


def build_lambda_zip(root: Path, out_dir: Path) -> tuple[Path, Closure]:
    """Write `out_dir/lambda.zip` (deterministic bytes) and return it with the closure it holds."""
    closure = import_closure(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "lambda.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted({p.relative_to(root) for p in closure.modules.values()}):
            info = zipfile.ZipInfo(path.as_posix(), date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / path).read_bytes())
    return target, closure


def project_root() -> Path:
    """The folder holding `batch/` and `events/` (the installed or checked-out sources)."""
    return Path(__file__).resolve().parents[2]
