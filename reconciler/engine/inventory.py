"""What the agent owns in the account: every resource carrying its ownership tags, from one paginated
Resource Groups Tagging API listing (GetResources) per cycle. The listing serves twice: it is the tags
of every managed resource (instead of a tag call per resource: reconciler.aws.Aws.listed_tags), and it
finds the resources no spec declares any more ("unmanaged": a spec file was removed; shown, never
touched).

CloudFront is global: its distributions are listed in us-east-1 (in the same call when that is the
agent's Region).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.core.types import ENV_TAG, LEASE_ROLE, NAME_TAG, OWNER_TAG, OWNER_VALUE, ROLE_TAG
from reconciler.kinds import registry

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

GLOBAL_REGION = "us-east-1"
IAM_ACTIONS = ("tag:GetResources",)


@dataclass(frozen=True)
class Owned:
    kind: str
    name: str
    id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "id": self.id}


def _types() -> dict[str, str]:
    return {cls.tagging_type: cls.kind for cls in registry.classes() if cls.tagging_type}


def list_owned(aws: Aws) -> dict[str, dict[str, str]]:
    """ARN -> tags of every resource of a known kind that carries the agent's ownership tag."""
    types = list(_types())
    regional = [t for t in types if not t.startswith("cloudfront:")]
    global_ = [t for t in types if t.startswith("cloudfront:")]
    if aws.region == GLOBAL_REGION:
        return dict(_tagged(aws.client("resourcegroupstaggingapi"), regional + global_))
    found = dict(_tagged(aws.client("resourcegroupstaggingapi"), regional))
    if global_:
        found.update(_tagged(aws.client("resourcegroupstaggingapi", region=GLOBAL_REGION), global_))
    return found


def owned_resources(listing: dict[str, dict[str, str]], environment: str | None = None) -> list[Owned]:
    """The listed resources of `environment` by kind and spec name (the agent's own lease table aside)."""
    by_type = _types()
    out = []
    for arn, tags in listing.items():
        kind = by_type.get(_type_of(arn))
        if kind and tags.get(ROLE_TAG) != LEASE_ROLE and tags.get(ENV_TAG) == environment:
            out.append(Owned(kind, tags.get(NAME_TAG) or _name_of(arn), arn))
    return sorted(set(out), key=lambda o: (o.kind, o.name))


def unmanaged(owned: Iterable[Owned], declared: Iterable[tuple[str, str]]) -> list[Owned]:
    """The owned resources that no spec declares."""
    names = set(declared)
    return [o for o in owned if (o.kind, o.name) not in names]


def _tagged(client: Any, types: list[str]) -> list[tuple[str, dict[str, str]]]:
    out = []
    for page in client.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": OWNER_TAG, "Values": [OWNER_VALUE]}], ResourceTypeFilters=types,
            ResourcesPerPage=100):  # AWS's maximum
        for item in page.get("ResourceTagMappingList", []):
            out.append((item["ResourceARN"], {t["Key"]: t["Value"] for t in item.get("Tags", [])}))
    return out


def _type_of(arn: str) -> str:
    """`arn:aws:dynamodb:us-east-1:123:table/Users` -> `dynamodb:table`."""
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5]
    if service == "s3":
        return "s3:bucket"
    return f"{service}:{resource.replace('/', ':').split(':', 1)[0]}"


def _name_of(arn: str) -> str:
    resource = arn.split(":", 5)[5]
    return resource.replace("/", ":").rsplit(":", 1)[-1]
