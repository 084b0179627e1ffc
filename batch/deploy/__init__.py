"""Deploying PoseBatch's SageMaker resources with plain boto3 (the async endpoint and its scaling)."""
