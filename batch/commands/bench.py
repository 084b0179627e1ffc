"""`pose-batch bench ...`: the throughput benchmark (`benchmarks/throughput.py`, in a checkout)."""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="throughput benchmark on COCO-size images and 12 MP phone photos (run from a checkout; arguments as "
        "benchmarks/throughput.py --help; quick: --sets coco,phones --count 96 --soak 0)",
    )
    parser.set_defaults(func=run, passes_extra_arguments=True)


def run(args: argparse.Namespace) -> int:
    if not SCRIPT.exists():
        print(f"the benchmark lives in a source checkout ({SCRIPT} is missing)")
        return 2
    main = runpy.run_path(str(SCRIPT))["main"]
    return int(main(getattr(args, "extra_arguments", [])))
