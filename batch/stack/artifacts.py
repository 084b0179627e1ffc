"""The artifacts bucket and what the stack needs from it: the Lambda zip and model.tar.gz.

Keys are content-addressed (`posebatch/lambda-<sha256>.zip`), so a code change is a parameter change
CloudFormation sees and the Lambda is updated; an unchanged upload is skipped."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from batch.inference.keypoints import KEYPOINTS_FILE
from batch.model_package import package_checkpoint
from batch.s3_uri import S3Uri

ARTIFACTS_PREFIX = "posebatch/"


def artifacts_bucket_name(stack_name: str, account_id: str, region: str) -> str:
    """Globally unique and recognisable; S3 names are at most 63 characters."""
    return f"{stack_name}-artifacts-{account_id}-{region}"[:63].rstrip("-")


def tls_only_policy(bucket: str) -> str:
    return (
        '{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*",'
        f'"Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"],'
        '"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}'
    )


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create the private, encrypted, TLS-only artifacts bucket unless it exists; True if created."""
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise  # 403: the name is someone else's bucket
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=tls_only_policy(bucket))
    return True


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def upload_content_addressed(
    s3: Any, bucket: str, path: Path, stem: str, suffix: str, *, prefix: str = ARTIFACTS_PREFIX
) -> S3Uri:
    """Upload `path` as `<prefix><stem>-<sha256[:16]><suffix>` unless that key is already there."""
    key = f"{prefix}{stem}-{_sha256(path)[:16]}{suffix}"
    if not _exists(s3, bucket, key):
        s3.upload_file(str(path), bucket, key)
    return S3Uri(bucket, key)


def model_artifact(s3: Any, bucket: str, model: str, *, prefix: str = ARTIFACTS_PREFIX) -> S3Uri:
    """The model.tar.gz URI: an `s3://` URI as given, a `.tar.gz` uploaded, a `.pt` checkpoint packed
    with `batch.model_package` then uploaded (keyed by the hash of the checkpoint and its keypoints.yaml:
    gzip headers carry a time stamp, and a new key would replace the endpoint's model on every deploy)."""
    if model.startswith("s3://"):
        return S3Uri.parse(model)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model {model} is neither an s3:// URI nor a file")
    if path.name.endswith(".tar.gz"):
        return upload_content_addressed(s3, bucket, path, "model", ".tar.gz", prefix=prefix)
    # The keypoints.yaml packed beside the checkpoint is part of the model: a change to it is a new key.
    keypoints = path.parent / KEYPOINTS_FILE
    packed_files = (path, keypoints) if keypoints.is_file() else (path,)
    key = f"{prefix}model-{path.stem}-{_sha256(*packed_files)[:16]}.tar.gz"
    if not _exists(s3, bucket, key):
        with tempfile.TemporaryDirectory() as tmp:
            packed = package_checkpoint(path, Path(tmp) / "model.tar.gz")
            s3.upload_file(str(packed), bucket, key)
    return S3Uri(bucket, key)
