#!/usr/bin/env python3
"""Pack a pose checkpoint into the model.tar.gz SageMaker unpacks into /opt/ml/model.

Usage: scripts/package_model.py CHECKPOINT.pt [-o model.tar.gz]
"""

import sys

from batch.cli import main

if __name__ == "__main__":
    sys.exit(main(["package-model", *sys.argv[1:]]))
