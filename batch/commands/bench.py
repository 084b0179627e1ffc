"""`pose-batch bench ...`: the throughput benchmark (`benchmarks/throughput.py`, in a source checkout).
Its options are the script's own: `pose-batch bench --help` lists them."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def register(subparsers: Any) -> None:
    # No help of its own: `--help` and every option go to the script, whose parser lists them.
    parser = subparsers.add_parser(
        "bench",
        help="throughput benchmark on COCO-size images and 12 MP phone photos (from a checkout; "
        "`pose-batch bench --help` lists its options; quick: --sets coco,phones --count 96 --soak 0)",
        add_help=False,
    )
    parser.set_defaults(func=run, passes_extra_arguments=True)


def run(args: argparse.Namespace) -> int:
    if not SCRIPT.exists():
        print(
            f"pose-batch bench: error: the benchmark lives in a source checkout ({SCRIPT} is missing)", file=sys.stderr
        )
        return 2
    main = runpy.run_path(str(SCRIPT))["main"]
    sys.argv[0] = "pose-batch bench"  # the script's usage line names the command the user typed
    return int(main(getattr(args, "extra_arguments", [])))
