"""`pose-batch bench ...`: the throughput benchmark (`benchmarks/throughput.py`, in a checkout)."""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="throughput benchmark (run from a checkout)", add_help=False)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for benchmarks/throughput.py")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not SCRIPT.exists():
        print(f"the benchmark lives in a source checkout ({SCRIPT} is missing)")
        return 2
    main = runpy.run_path(str(SCRIPT))["main"]
    return int(main(args.bench_args))
