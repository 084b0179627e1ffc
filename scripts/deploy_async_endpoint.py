#!/usr/bin/env python3
"""Deploy the asynchronous endpoint and its scale-to-zero policies: `pose-batch deploy` as a script.

    scripts/deploy_async_endpoint.py --input s3://B/input/ --output s3://B/output/ \\
        --model-data s3://B/models/model.tar.gz --image ECR_URI --role ROLE_ARN \\
        --success-topic ARN --error-topic ARN
"""

from __future__ import annotations

import sys

from batch.cli import main

if __name__ == "__main__":
    sys.exit(main(["deploy", *sys.argv[1:]]))
