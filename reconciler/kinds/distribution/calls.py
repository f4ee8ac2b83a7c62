"""CloudFront's listings and tags: a distribution found again by its ownership tags (it has no name) or its id,
every distribution and Origin Access Control listed, tags read and changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.aws.failures import error_code
from reconciler.core.errors import ReconcilerError
from reconciler.core.types import NAME_TAG, FieldChange, Live, NotYet, owned_by
from reconciler.kinds.distribution import invalidations as limits
from reconciler.kinds.distribution.config import INVALIDATIONS_TAG, apply_fields, invalidation_hash, oac_name
from reconciler.kinds.tags import tag_changes

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.distribution.protocol import DistributionLike

log = structlog.get_logger()




def find_distribution(aws: Aws, name: str, external: str | None = None, environment: str | None = None
                      ) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The distribution of spec `name` (of `environment`): by externalId, else by its ownership tags."""
    cf = aws.client("cloudfront")
    if external:
        try:
            dist = cf.get_distribution(Id=external)["Distribution"]
        except cf.exceptions.NoSuchDistribution as exc:
            raise ReconcilerError(f"GetDistribution failed: metadata.externalId {external!r} "
                                  "is not a distribution of this account") from exc
        return dist, read_tags(aws, dist["ARN"])
    summaries = aws.cached("cloudfront:distributions", lambda: list_distributions(cf))
    mine = []
    for summary in summaries:
        tags = read_tags(aws, summary["ARN"])
        if owned_by(tags, environment) and tags.get(NAME_TAG) == name:
            mine.append((summary, tags))
    if len(mine) > 1:
        ids = ", ".join(s["Id"] for s, _ in mine)
        raise ReconcilerError(f"ListDistributions: {len(mine)} distributions are tagged reconciler:name="
                              f"{name} ({ids}); keep one (set metadata.externalId to it) and delete the rest")
    return mine[0] if mine else None


def list_distributions(cf: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in cf.get_paginator("list_distributions").paginate():
        out += page.get("DistributionList", {}).get("Items") or []
    return out


def list_oacs(cf: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    args: dict[str, Any] = {}
    while True:
        page = cf.list_origin_access_controls(**args)["OriginAccessControlList"]
        out.update({o["Id"]: o["Name"] for o in page.get("Items") or []})
        if not page.get("IsTruncated") or not page.get("NextMarker"):
            return out
        args["Marker"] = page["NextMarker"]


def read_tags(aws: Aws, arn: str) -> dict[str, str]:
    cf = aws.client("cloudfront")
    items = aws.cached(f"cloudfront:tags:{arn}",
                       lambda: cf.list_tags_for_resource(Resource=arn)["Tags"].get("Items") or [])
    return {t["Key"]: t["Value"] for t in items}


def update_tags(cf: Any, arn: str, changes: Sequence[FieldChange]) -> None:
    put, drop = tag_changes(changes)
    if put:
        cf.tag_resource(Resource=arn, Tags={"Items": [{"Key": k, "Value": v} for k, v in put.items()]})
    if drop:
        cf.untag_resource(Resource=arn, TagKeys={"Items": drop})


def update_config(distribution: DistributionLike, cf: Any, live: Live, fields: set[str], oac_id: str | None,
                  region: str) -> None:
    """UpdateDistribution with IfMatch; on a stale ETag re-read and retry once."""
    base, etag = live.extra["config"], live.extra["etag"]
    for attempt in (1, 2):
        config = apply_fields(base, distribution.desired(live.extra["arn"]), fields, oac_id, region)
        try:
            cf.update_distribution(Id=live.id, IfMatch=etag, DistributionConfig=config)
            return
        except cf.exceptions.ClientError as exc:
            if error_code(exc) != "PreconditionFailed" or attempt == 2:
                raise
        fresh = cf.get_distribution_config(Id=live.id)
        base, etag = fresh["DistributionConfig"], fresh["ETag"]


def invalidate(distribution: DistributionLike, cf: Any, live: Live, entries: list[dict[str, Any]]) -> None:
    """Issue each new invalidation that AWS's limits in progress leave room for, record what was issued,
    and leave the rest pending for a later cycle."""
    issued = set(live.extra.get("issued") or ())
    room, held = limits.InvalidationRoom(cf, live.id), None
    for entry in entries:
        held = room.refusal(entry["paths"])
        if held:
            break
        digest = invalidation_hash(entry)
        cf.create_invalidation(DistributionId=live.id, InvalidationBatch={
            "Paths": {"Quantity": len(entry["paths"]), "Items": list(entry["paths"])},
            "CallerReference": f"reconciler-{distribution.name}-{digest}"})
        room.take(entry["paths"])
        issued.add(digest)
    wanted = [invalidation_hash(e) for e in distribution.desired()["invalidations"]]
    record = ".".join(h for h in wanted if h in issued)
    if record != ".".join(h for h in wanted if h in (live.extra.get("issued") or ())):
        cf.tag_resource(Resource=live.extra["arn"], Tags={"Items": [{"Key": INVALIDATIONS_TAG, "Value": record}]})
    if held:
        raise NotYet(held)


def ensure_oac(distribution: DistributionLike, cf: Any) -> str:
    """The OAC for this distribution: the one the spec names, or the agent's own (created)."""
    name = distribution.oac
    for oac_id, existing in list_oacs(cf).items():
        if existing == name:
            return oac_id
    if name != oac_name(distribution.name, distribution.spec.environment):
        raise ReconcilerError(f"ListOriginAccessControls: no Origin Access Control named {name!r} "
                              "(spec.origin.originAccessControl)")
    return str(cf.create_origin_access_control(OriginAccessControlConfig={
        "Name": name, "Description": f"Managed by reconciler for Distribution/{distribution.name}",
        "SigningProtocol": "sigv4", "SigningBehavior": "always",
        "OriginAccessControlOriginType": "s3"})["OriginAccessControl"]["Id"])


def delete_oac_unless_used(distribution: DistributionLike, cf: Any, oac_id: str, leaving: str) -> None:
    """The agent's OAC, once no distribution's origin uses it (AWS: OriginAccessControlInUse otherwise);
    `leaving`: the distribution being deleted (detached from it by the disable step)."""
    users = [d["Id"] for d in list_distributions(cf) if d["Id"] != leaving
             and any(o.get("OriginAccessControlId") == oac_id for o in d.get("Origins", {}).get("Items") or [])]
    if users:
        log.warning("apply.oac_kept", kind=distribution.kind, name=distribution.name, oac=oac_id, used_by=users,
                    reason="another distribution's origin uses it; AWS refuses to delete an OAC in use")
        return
    try:
        cf.delete_origin_access_control(Id=oac_id, IfMatch=cf.get_origin_access_control(Id=oac_id)["ETag"])
    except cf.exceptions.ClientError as exc:
        if error_code(exc) != "OriginAccessControlInUse":  # taken into use since the listing: kept
            raise
        log.warning("apply.oac_kept", kind=distribution.kind, name=distribution.name, oac=oac_id, reason=str(exc))
