"""A least-privilege IAM policy for exactly the calls the agent makes, from the registry.

Each kind lists its IAM actions next to its code (`Resource.iam_actions`); this module
joins them, so the policy cannot drift from the code. `iam_action()` maps an API operation
to the IAM action that authorises it where the two names differ (tests use it to prove
that every call the agent sends is covered).
"""

from __future__ import annotations

from typing import Any

from .resources import registry

# API operation -> IAM action, where AWS names them differently.
_ACTIONS = {
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "DeletePublicAccessBlock"): "s3:DeleteBucketPublicAccessBlock",
    ("s3", "DeleteBucketTagging"): "s3:PutBucketTagging",
    ("s3", "HeadObject"): "s3:GetObject",
    ("cloudfront", "CreateDistributionWithTags"): "cloudfront:CreateDistribution",
    ("resourcegroupstaggingapi", "GetResources"): "tag:GetResources",
    ("tagging", "GetResources"): "tag:GetResources",  # the name in the request's signing scope
    ("s3", "DeleteObjects"): "s3:DeleteObject",
}


# The calls of reconciler/lease.py, on the lease table only.
LEASE_ACTIONS = ("dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:TagResource", "dynamodb:GetItem",
                 "dynamodb:PutItem", "dynamodb:UpdateItem")


def iam_action(service: str, operation: str) -> str:
    return _ACTIONS.get((service, operation), f"{service}:{operation}")


def policy(lease_table: str = "reconciler-lease") -> dict[str, Any]:
    """One statement per kind, in registry order, and one for the single-writer lease table."""
    statements = [
        {"Sid": f"Reconcile{cls.kind}", "Effect": "Allow", "Action": sorted(set(cls.iam_actions)), "Resource": "*"}
        for cls in registry.classes() if cls.iam_actions
    ]
    from .engine.inventory import IAM_ACTIONS

    statements.append({"Sid": "Inventory", "Effect": "Allow", "Action": list(IAM_ACTIONS), "Resource": "*"})
    statements.append({"Sid": "AgentLease", "Effect": "Allow", "Action": sorted(LEASE_ACTIONS),
                       "Resource": f"arn:aws:dynamodb:*:*:table/{lease_table}"})
    return {"Version": "2012-10-17", "Statement": statements}
