"""What the agent owns in the account: every resource carrying its ownership tags, from one paginated
Resource Groups Tagging API listing (GetResources), to find the ones no spec declares any more
("unmanaged": a spec file was removed). They are shown, never touched.

CloudFront is global: its distributions are listed in us-east-1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model import LEASE_ROLE, NAME_TAG, OWNER_TAG, OWNER_VALUE, ROLE_TAG
from ..resources import registry

if TYPE_CHECKING:
    from ..aws import Aws

GLOBAL_REGION = "us-east-1"
IAM_ACTIONS = ("tag:GetResources",)


@dataclass(frozen=True)
class Owned:
    kind: str
    name: str
    id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "id": self.id}


def owned_resources(aws: Aws) -> list[Owned]:
    """Every resource of a known kind that carries the agent's ownership tags (its own lease table aside)."""
    by_type = {cls.tagging_type: cls.kind for cls in registry.classes() if cls.tagging_type}
    regional = [t for t in by_type if not t.startswith("cloudfront:")]
    found = list(_tagged(aws.client("resourcegroupstaggingapi"), regional))
    if any(t.startswith("cloudfront:") for t in by_type):
        cloudfront = (aws.client("resourcegroupstaggingapi") if aws.region == GLOBAL_REGION
                      else aws.client("resourcegroupstaggingapi", region=GLOBAL_REGION))
        found += _tagged(cloudfront, [t for t in by_type if t.startswith("cloudfront:")])
    out = []
    for arn, tags in found:
        kind = by_type.get(_type_of(arn))
        if kind and tags.get(ROLE_TAG) != LEASE_ROLE:
            out.append(Owned(kind, tags.get(NAME_TAG) or _name_of(arn), arn))
    return sorted(set(out), key=lambda o: (o.kind, o.name))


def unmanaged(owned: Iterable[Owned], declared: Iterable[tuple[str, str]]) -> list[Owned]:
    """The owned resources that no spec declares."""
    names = set(declared)
    return [o for o in owned if (o.kind, o.name) not in names]


def _tagged(client: Any, types: list[str]) -> list[tuple[str, dict[str, str]]]:
    out = []
    for page in client.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": OWNER_TAG, "Values": [OWNER_VALUE]}], ResourceTypeFilters=types):
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
