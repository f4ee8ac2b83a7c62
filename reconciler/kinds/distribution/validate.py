"""What validate checks of a Distribution spec beyond its schema (plain HTTP, cache policies, its origin bucket,
aliases, adoption, invalidations, behaviours), and the requests its creation sends, checked against AWS's rules
before any call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints
from reconciler.aws.caching import MANAGED_CACHE_POLICIES
from reconciler.core.types import Request
from reconciler.kinds.distribution import invalidations as limits
from reconciler.kinds.distribution.config import (
    CONFIG_FIELDS,
    INVALIDATIONS_TAG,
    OAC_TAG,
    apply_fields,
    invalidation_hash,
    invalidation_key,
    invalidation_shape,
    oac_name,
)
from reconciler.kinds.distribution.policy import bucket_policy

if TYPE_CHECKING:
    from reconciler.kinds.distribution.protocol import DistributionLike
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_

_PLACEHOLDER_OAC, _PLACEHOLDER_ID, _PLACEHOLDER_ACCOUNT = "E0000000000000", "E0000000000000", "000000000000"


def check_distribution(spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
    s, problems = spec.spec, []
    plain_http_ok = "plain-http" in spec.metadata.security_exceptions
    policies = [(("spec", "viewerProtocolPolicy"), s.get("viewerProtocolPolicy"))] + [
        (("spec", "behaviors", i, "viewerProtocolPolicy"), b.get("viewerProtocolPolicy"))
        for i, b in enumerate(s.get("behaviors") or [])]
    for path, policy in policies:
        if policy == "allow-all" and not plain_http_ok:
            problems.append((path, "'allow-all' serves the site over plain HTTP; use redirect-to-https or "
                                   "https-only, or add 'plain-http' to metadata.securityExceptions"))
    refs = [(("spec", "cachePolicy"), s.get("cachePolicy"))] + [
        (("spec", "behaviors", i, "cachePolicy"), b.get("cachePolicy"))
        for i, b in enumerate(s.get("behaviors") or [])]
    for path, ref in refs:
        if ref and ref.startswith("Managed-") and ref not in MANAGED_CACHE_POLICIES:
            problems.append((path, f"unknown managed cache policy {ref!r}; known: "
                                   + ", ".join(sorted(MANAGED_CACHE_POLICIES))))
    origin = next((o for o in specs if o.kind == "Bucket" and o.name == s["origin"]["bucket"]), None)
    if origin is None:
        problems.append((("spec", "origin", "bucket"),
                         f"no Bucket spec named {s['origin']['bucket']!r} (the origin must be declared)"))
    elif origin.metadata.state == "absent" and spec.metadata.state != "absent":
        problems.append((("spec", "origin", "bucket"),
                         f"the Bucket {origin.name!r} is tombstoned (state: absent): a distribution that stays "
                         "cannot serve from it; tombstone the distribution too, or keep the bucket"))
    comment = constraints.distribution_comment(s.get("comment") or "")
    if comment:
        problems.append((("spec", "comment"), comment.said()))
    if s.get("aliases") and not s.get("certificateArn"):
        problems.append((("spec", "aliases"), "aliases need spec.certificateArn (an ACM certificate in "
                                              "us-east-1 covering them)"))
    if spec.metadata.adopt and not spec.metadata.external_id:
        problems.append((("metadata", "adopt"), "adopting a distribution needs metadata.externalId "
                                                "(its id, e.g. E2QWRUHEXAMPLE): a distribution has no name"))
    keys = [invalidation_key(invalidation_shape(e)) for e in s.get("invalidations") or []]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            problems.append((("spec", "invalidations", i), f"duplicate invalidation {key!r}"))
        too_large = limits.too_large(s["invalidations"][i]["paths"])
        if too_large:
            problems.append((("spec", "invalidations", i, "paths"), too_large))
    paths = [b["pathPattern"] for b in s.get("behaviors") or []]
    for i, p in enumerate(paths):
        if p in paths[:i]:
            problems.append((("spec", "behaviors", i, "pathPattern"), f"duplicate path pattern {p!r}"))
    return problems


def create_args(distribution: DistributionLike, oac_id: str, region: str) -> dict[str, Any]:
    # one per spec and environment: a retry finds it
    reference = oac_name(distribution.name, distribution.spec.environment)
    config = apply_fields({"CallerReference": reference}, distribution.desired(), CONFIG_FIELDS, oac_id, region)
    tags = {**distribution.desired()["tags"]}
    hashes = [invalidation_hash(e) for e in distribution.desired()["invalidations"]]
    if hashes:  # a new distribution has an empty cache: its invalidations are moot
        tags[INVALIDATIONS_TAG] = ".".join(hashes)
    tags[OAC_TAG] = f"{oac_id}:{distribution.oac}"
    return {"DistributionConfigWithTags": {
        "DistributionConfig": config, "Tags": {"Items": [{"Key": k, "Value": v} for k, v in tags.items()]}}}


def create_requests(distribution: DistributionLike) -> list[Request]:
    """CreateDistributionWithTags as create() sends it (an Origin Access Control's id in place of the one AWS
    assigns), and the bucket policy that lets it read its origin (for a distribution of this account)."""
    args = create_args(distribution, _PLACEHOLDER_OAC, "us-east-1")
    tags = {t["Key"]: t["Value"] for t in args["DistributionConfigWithTags"]["Tags"]["Items"]}
    arn = f"arn:aws:cloudfront::{_PLACEHOLDER_ACCOUNT}:distribution/{_PLACEHOLDER_ID}"
    policy = json.dumps(bucket_policy(distribution.bucket, arn))
    return [Request("cloudfront", "CreateDistributionWithTags", args, tags=tags),
            Request("s3", "PutBucketPolicy", {"Bucket": distribution.bucket, "Policy": policy},
                    where=("spec", "origin"))]
