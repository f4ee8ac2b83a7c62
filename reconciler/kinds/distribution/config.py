"""A distribution's spec as CloudFront's DistributionConfig and back: origins and their Origin Access Control,
cache behaviours and policies, aliases and certificate, the invalidations recorded as issued."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any

from reconciler.aws.caching import MANAGED_CACHE_POLICIES

if TYPE_CHECKING:
    pass


POLICY_NAMES = {v: k for k, v in MANAGED_CACHE_POLICIES.items()}


DEFAULT_CACHE_POLICY = "Managed-CachingOptimized"


DEFAULT_VIEWER_POLICY = "redirect-to-https"


INVALIDATIONS_TAG = "reconciler:invalidations"


OAC_TAG = "reconciler:oac"  # <id>:<name> of the origin's Origin Access Control, as the agent set it


INTERNAL_TAGS = (INVALIDATIONS_TAG, OAC_TAG)


GET_HEAD = {"Quantity": 2, "Items": ["HEAD", "GET"],
             "CachedMethods": {"Quantity": 2, "Items": ["HEAD", "GET"]}}


LEGACY_CACHE_KEYS = ("ForwardedValues", "MinTTL", "DefaultTTL", "MaxTTL")


def cache_policy_name(ref: str) -> str:
    """A cache policy as plans show it: the managed name where the id is a managed one."""
    return POLICY_NAMES.get(ref, ref)


def cache_policy_id(ref: str) -> str:
    return MANAGED_CACHE_POLICIES.get(ref, ref)


def oac_name(spec_name: str, environment: str | None = None) -> str:
    """The agent's own Origin Access Control of a distribution (names are unique in an account: an environment's
    carry its name)."""
    return f"reconciler-{environment}-{spec_name}" if environment else f"reconciler-{spec_name}"


def invalidation_key(entry: dict[str, Any]) -> str:
    """How plans name an invalidation: `2025-09-23 /index.html /about.html`."""
    return f"{entry['revision']} {' '.join(entry['paths'])}"


def invalidation_hash(entry: dict[str, Any]) -> str:
    raw = json.dumps([list(entry["paths"]), str(entry["revision"])], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:8]


CONFIG_FIELDS = {"enabled", "comment", "origin", "defaultRootObject", "aliases", "certificateArn",
                      "priceClass", "viewerProtocolPolicy", "cachePolicy", "behaviors"}


def behavior_shape(raw: dict[str, Any]) -> dict[str, Any]:
    return {"pathPattern": raw["pathPattern"],
            "cachePolicy": cache_policy_name(raw.get("cachePolicy", DEFAULT_CACHE_POLICY)),
            "viewerProtocolPolicy": raw.get("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY)}


def invalidation_shape(raw: dict[str, Any]) -> dict[str, Any]:
    return {"paths": list(raw["paths"]), "revision": str(raw["revision"])}


def origin_id_of(bucket: str) -> str:
    return f"s3-{bucket}"


def bucket_of(domain: str) -> str:
    """`site.s3.us-east-1.amazonaws.com` -> `site`."""
    return domain.split(".s3.", 1)[0].split(".s3-", 1)[0] if ".s3" in domain else domain


def issued_hashes(tags: dict[str, str]) -> set[str]:
    """The invalidations already issued, as the agent records them in a tag (their hashes)."""
    return set(filter(None, tags.get(INVALIDATIONS_TAG, "").split(".")))


def target_origin(config: dict[str, Any]) -> dict[str, Any] | None:
    origins = config.get("Origins", {}).get("Items") or []
    dcb = config.get("DefaultCacheBehavior", {})
    return next((o for o in origins if o["Id"] == dcb.get("TargetOriginId")), origins[0] if origins else None)


def recorded_oac(config: dict[str, Any], tags: dict[str, str]) -> dict[str, str] | None:
    """{id: name} of the origin's OAC when the agent's tag recorded that very id (no listing needed)."""
    recorded_id, _, name = tags.get(OAC_TAG, "").partition(":")
    target = target_origin(config) or {}
    return {recorded_id: name} if recorded_id and name and target.get("OriginAccessControlId") == recorded_id \
        else None


def config_state(config: dict[str, Any], oacs: dict[str, str]) -> dict[str, Any]:
    """GetDistributionConfig's answer in the spec's shape (Quantity wrappers and ids resolved)."""
    dcb = config.get("DefaultCacheBehavior", {})
    target = target_origin(config)
    origin = None
    if target:
        origin = {"bucket": bucket_of(target["DomainName"]),
                  "accessControl": oacs.get(target.get("OriginAccessControlId") or "")}
    cert = config.get("ViewerCertificate", {})
    return {
        "enabled": bool(config.get("Enabled")),
        "comment": config.get("Comment") or "",
        "origin": origin,
        "defaultRootObject": config.get("DefaultRootObject") or "",
        "aliases": sorted(config.get("Aliases", {}).get("Items") or []),
        "certificateArn": None if cert.get("CloudFrontDefaultCertificate", True) else cert.get("ACMCertificateArn"),
        "priceClass": config.get("PriceClass") or "PriceClass_All",
        "viewerProtocolPolicy": dcb.get("ViewerProtocolPolicy"),
        "cachePolicy": cache_policy_name(dcb.get("CachePolicyId") or "") or None,
        "behaviors": [
            {"pathPattern": b["PathPattern"], "cachePolicy": cache_policy_name(b.get("CachePolicyId") or "") or None,
             "viewerProtocolPolicy": b.get("ViewerProtocolPolicy")}
            for b in config.get("CacheBehaviors", {}).get("Items") or []],
    }


def apply_fields(base: dict[str, Any], want: dict[str, Any], fields: set[str], oac_id: str | None,
                  region: str) -> dict[str, Any]:
    """The DistributionConfig to send: `base` with exactly `fields` set from the spec.

    Fields not named (unmanaged or ignored ones) keep their live values.
    """
    config = copy.deepcopy(base)
    origin_id = origin_id_of(want["origin"]["bucket"])
    if "origin" in fields or "Origins" not in config:
        existing = {o["Id"]: o for o in config.get("Origins", {}).get("Items") or []}
        origin = {**existing.get(origin_id, {}), "Id": origin_id,
                  "DomainName": f"{want['origin']['bucket']}.s3.{region}.amazonaws.com",
                  "OriginPath": "", "S3OriginConfig": {"OriginAccessIdentity": ""},
                  "OriginAccessControlId": oac_id or ""}
        origin.pop("CustomOriginConfig", None)
        config["Origins"] = {"Quantity": 1, "Items": [origin]}
    target = config["Origins"]["Items"][0]["Id"]
    simple = {"enabled": "Enabled", "comment": "Comment", "defaultRootObject": "DefaultRootObject",
              "priceClass": "PriceClass"}
    for name, key in simple.items():
        if name in fields or key not in config:
            config[key] = want.get(name, DEFAULTS[name])
    if "aliases" in fields or "Aliases" not in config:
        aliases = sorted(want.get("aliases") or [])
        config["Aliases"] = {"Quantity": len(aliases), **({"Items": aliases} if aliases else {})}
    if "certificateArn" in fields or "ViewerCertificate" not in config:
        arn = want.get("certificateArn")
        config["ViewerCertificate"] = (
            {"ACMCertificateArn": arn, "SSLSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"}
            if arn else {"CloudFrontDefaultCertificate": True})
    dcb = config.get("DefaultCacheBehavior") or {}
    config["DefaultCacheBehavior"] = cache_behavior(
        dcb, target,
        want.get("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY) if "viewerProtocolPolicy" in fields or not dcb
        else dcb["ViewerProtocolPolicy"],
        want.get("cachePolicy", DEFAULT_CACHE_POLICY) if "cachePolicy" in fields or not dcb
        else dcb.get("CachePolicyId"))
    if "behaviors" in fields or "CacheBehaviors" not in config:
        existing_b = {b["PathPattern"]: b for b in config.get("CacheBehaviors", {}).get("Items") or []}
        items = [dict(cache_behavior(existing_b.get(b["pathPattern"], {}), target, b["viewerProtocolPolicy"],
                                      b["cachePolicy"]), PathPattern=b["pathPattern"])
                 for b in want.get("behaviors") or []]
        config["CacheBehaviors"] = {"Quantity": len(items), **({"Items": items} if items else {})}
    return config


DEFAULTS = {"enabled": True, "comment": "", "defaultRootObject": "", "priceClass": "PriceClass_All"}


def cache_behavior(base: dict[str, Any], target: str, viewer: str, policy: str | None) -> dict[str, Any]:
    behavior = {k: v for k, v in base.items() if k not in LEGACY_CACHE_KEYS or not policy}
    behavior.update(TargetOriginId=target, ViewerProtocolPolicy=viewer)
    if policy:
        behavior["CachePolicyId"] = cache_policy_id(policy)
    behavior.setdefault("Compress", True)
    behavior.setdefault("AllowedMethods", GET_HEAD)
    return behavior
