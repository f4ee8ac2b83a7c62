"""ElastiCache's answers in words and its small calls: what AWS is doing to a group (pending, busy), a member's
engine version as the spec states it, and the group's tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.core.types import Live

if TYPE_CHECKING:
    pass


def pending(status: str, changing: dict[str, Any], members: list[dict[str, Any]]) -> str | None:
    """What AWS is doing to the group, in words: `replication group modifying (CacheNodeType ->
    cache.t3.small)`; None when it and its members are available."""
    busy = [m["CacheClusterId"] + " " + m["CacheClusterStatus"] for m in members
            if m.get("CacheClusterStatus", "available") != "available"]
    if status == "available" and not busy:
        return None
    what = ", ".join(f"{k} -> {v}" for k, v in changing.items())
    return f"replication group {status}" + (f" ({what})" if what else "") + (
        f"; members {', '.join(busy)}" if busy and status != "creating" else "")


def busy_with(live: Live) -> str | None:
    """Why a modification must wait: AWS takes one only while the group is `available`."""
    return live.pending if live.extra.get("status", "available") != "available" else None


def update_tags(ec: Any, arn: str, put: dict[str, str], drop: list[str]) -> None:
    if put:
        ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": k, "Value": v} for k, v in put.items()])
    if drop:
        ec.remove_tags_from_resource(ResourceName=arn, TagKeys=drop)


def version(live: str | None, wanted: str | None) -> str | None:
    """Live `7.1.0` satisfies a spec's `7.1` (AWS reports full versions)."""
    if live and wanted and live.startswith(wanted + "."):
        return wanted
    return live


def read_tags(ec: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]}
