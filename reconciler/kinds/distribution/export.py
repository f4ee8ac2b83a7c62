"""`reconciler export` for distributions: each one with a single S3 origin as the spec a person would write
(defaults left out); the bucket it serves from is exported beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.core.types import NAME_TAG
from reconciler.kinds.distribution.calls import list_distributions, list_oacs
from reconciler.kinds.distribution.config import (
    DEFAULT_CACHE_POLICY,
    DEFAULT_VIEWER_POLICY,
    config_state,
    oac_name,
)

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported


def export_distributions(aws: Aws, options: dict[str, Any]) -> list[Exported]:
    from reconciler.kinds.exported import Exported, spec_name, user_tags

    cf = aws.client("cloudfront")
    oacs = list_oacs(cf)
    out = []
    for summary in list_distributions(cf):
        config = cf.get_distribution_config(Id=summary["Id"])["DistributionConfig"]
        tags = {t["Key"]: t["Value"] for t in
                cf.list_tags_for_resource(Resource=summary["ARN"])["Tags"].get("Items") or []}
        fallback = f"dist-{summary['Id'].lower()}"
        name = tags.get(NAME_TAG) or spec_name(config.get("Comment") or "", fallback)
        item = Exported("Distribution", name, {}, tags, external_id=summary["Id"])
        origins = config.get("Origins", {}).get("Items") or []
        s3_origins = [o for o in origins if ".s3." in o["DomainName"] or ".s3-" in o["DomainName"]]
        if len(origins) != 1 or not s3_origins:
            item.warnings.append(f"spec.origin: only a single S3 origin can be expressed; this one has "
                                 f"{len(origins)} origin(s) ({', '.join(o['DomainName'] for o in origins)}): "
                                 "not exported")
            item.skipped = True
            out.append(item)
            continue
        state = config_state(config, oacs)
        item.spec = export_spec(state, config, item, name)
        item.requires.append(("Bucket", state["origin"]["bucket"]))
        if user_tags(tags):
            item.spec["tags"] = user_tags(tags)
        out.append(item)
    return out


def export_spec(state: dict[str, Any], config: dict[str, Any], item: Exported, name: str) -> dict[str, Any]:
    """A distribution's live state as the spec a person would write (defaults left out)."""
    spec: dict[str, Any] = {}
    if not state["enabled"]:
        spec["enabled"] = False
    if state["comment"]:
        spec["comment"] = state["comment"]
    origin: dict[str, Any] = {"bucket": state["origin"]["bucket"]}
    access = state["origin"]["accessControl"]
    if access and access != oac_name(name):
        origin["originAccessControl"] = access
    if not access:
        item.warnings.append("spec.origin: the origin uses no Origin Access Control (public bucket or "
                             "legacy OAI); adopting it switches it to an OAC the agent creates")
    spec["origin"] = origin
    for key, default in (("defaultRootObject", ""), ("priceClass", "PriceClass_All"),
                         ("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY), ("cachePolicy", DEFAULT_CACHE_POLICY)):
        if state[key] not in (default, None):
            spec[key] = state[key]
    if state["aliases"]:
        spec["aliases"] = state["aliases"]
    if state["certificateArn"]:
        spec["certificateArn"] = state["certificateArn"]
    behaviors = [{k: v for k, v in b.items() if (k, v) not in (("cachePolicy", DEFAULT_CACHE_POLICY),
                                                                ("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY))}
                 for b in state["behaviors"]]
    if behaviors:
        spec["behaviors"] = behaviors
    viewer = [state["viewerProtocolPolicy"], *(b["viewerProtocolPolicy"] for b in state["behaviors"])]
    if "allow-all" in viewer:
        item.exceptions.append("plain-http")
        item.warnings.append("spec.viewerProtocolPolicy: serves plain HTTP; exported as is with "
                             "securityExceptions: [plain-http]")
    if state["cachePolicy"] is None or any(b["cachePolicy"] is None for b in state["behaviors"]):
        item.warnings.append(f"spec.cachePolicy: a behavior uses legacy cache settings (no cache policy); "
                             f"adopting it switches it to {DEFAULT_CACHE_POLICY}")
        spec.pop("cachePolicy", None)
        for b in spec.get("behaviors", []):
            if b.get("cachePolicy") is None:
                b.pop("cachePolicy", None)
    unmanaged = {"CustomErrorResponses": "custom error responses", "Logging": "access logging",
                 "WebACLId": "a WAF web ACL", "Restrictions": "geo restrictions", "OriginGroups": "origin groups"}
    for key, what in unmanaged.items():
        value = config.get(key)
        present = (value.get("Quantity", 0) if isinstance(value, dict) and "Quantity" in value
                   else value.get("Enabled") if key == "Logging" and isinstance(value, dict)
                   else value.get("GeoRestriction", {}).get("RestrictionType", "none") != "none"
                   if key == "Restrictions" and isinstance(value, dict) else value)
        if present:
            item.warnings.append(f"{key}: {what} cannot be expressed in a spec yet; kept as is, "
                                 "not managed")
    return spec
