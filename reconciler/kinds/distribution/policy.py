"""The origin bucket's policy, S3's part of a distribution: the statement that lets only this distribution read
the bucket (Origin Access Control), as AWS normalises it, read and written."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from reconciler.aws.failures import error_code

if TYPE_CHECKING:
    pass


def bucket_policy(bucket: str, distribution_arn: str) -> dict[str, Any]:
    """The bucket policy that lets exactly this distribution read the bucket (OAC)."""
    partition = distribution_arn.split(":")[1]
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowCloudFrontReadViaOAC",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::{bucket}/*",
            "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
        }],
    }


def normalise_policy(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A policy in comparable form: what it allows or denies, not how it is labelled (Sid, Id
    and the Version date are dropped; one-element lists unwrapped; statements sorted)."""
    if document is None:
        return None

    def unwrap(value: Any) -> Any:
        if isinstance(value, list):
            value = [unwrap(v) for v in value]
            return value[0] if len(value) == 1 else sorted(value, key=json.dumps)
        if isinstance(value, dict):
            return {k: unwrap(v) for k, v in value.items()}
        return value

    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    labelled = ({k: v for k, v in s.items() if k != "Sid"} for s in statements)
    return {"Statement": sorted((unwrap(s) for s in labelled), key=json.dumps)}


def read_bucket_policy(s3: Any, bucket: str) -> dict[str, Any] | None:
    try:
        return normalise_policy(json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]))
    except s3.exceptions.ClientError as exc:
        if error_code(exc) in ("NoSuchBucketPolicy", "NoSuchBucket"):
            return None
        raise


def put_bucket_policy(s3: Any, bucket: str, arn: str) -> None:
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy(bucket, arn)))
