#!/usr/bin/env python3
"""Launch a pose Batch Transform job (same as `pose-batch transform`; see `--help`).

    scripts/launch_transform.py s3://BUCKET/input/ --output s3://BUCKET/output/ --wait \
        --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/posebatch:latest \
        --model-data s3://BUCKET/models/model.tar.gz --role-arn arn:aws:iam::ACCOUNT:role/SageMakerRole
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.commands import transform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    transform.add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return transform.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
