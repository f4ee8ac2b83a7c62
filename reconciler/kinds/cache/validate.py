"""What validate checks of a CacheCluster spec beyond its schema (names, the token and transit encryption, allowFrom,
failover, subnets), and the requests its creation sends, checked against AWS's rules before any call."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints
from reconciler.core.types import Request, ownership_tags
from reconciler.kinds.cache.network import (
    group_description,
    open_to_world,
    resource_name,
)
from reconciler.kinds.cache.token import FINGERPRINT_TAG, token_problem

if TYPE_CHECKING:
    from reconciler.kinds.cache.protocol import Cluster
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_


def check_cache(spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
    s, problems = spec.spec, []
    named = constraints.replication_group_id(spec.name)
    if named:
        problems.append((("metadata", "name"), named.said()))
    if s.get("authToken") and not s.get("transitEncryption", True):
        problems.append((("spec", "authToken"), "ElastiCache accepts an AUTH token only with transit "
                                                "encryption: set transitEncryption: true, or drop authToken"))
    variable = (s.get("authToken") or {}).get("fromEnv")
    if variable and os.environ.get(variable) is not None:  # the value is known without AWS: check it now
        problem = token_problem(os.environ[variable])
        if problem:
            problems.append((("spec", "authToken"), f"the environment variable {variable}: {problem}"))
    world_ok = "open-to-world" in spec.metadata.security_exceptions
    for i, entry in enumerate(s.get("allowFrom") or []):
        if "cidr" in entry:
            try:
                ipaddress.ip_network(entry["cidr"], strict=False)
            except ValueError:
                problems.append((("spec", "allowFrom", i, "cidr"), f"{entry['cidr']!r} is not a CIDR block"))
                continue
            if open_to_world(entry["cidr"]) and not world_ok:
                problems.append((("spec", "allowFrom", i, "cidr"),
                                 f"{entry['cidr']} opens the cache to the whole internet; allow the bastion's "
                                 "security group instead, or add 'open-to-world' to metadata.securityExceptions"))
    if s.get("automaticFailover") and not s.get("replicas"):
        problems.append((("spec", "automaticFailover"), "automatic failover needs at least one replica "
                                                        "(spec.replicas >= 1)"))
    if s.get("subnetIds") and not s.get("vpcId"):
        problems.append((("spec", "subnetIds"), "subnetIds need spec.vpcId (the VPC they belong to)"))
    return problems


def create_args(cluster: Cluster, want: dict[str, Any], sg_id: str) -> dict[str, Any]:
    """CreateReplicationGroup's parameters but the AUTH token (a secret: resolved only to be sent)."""
    tags = dict(want["tags"])
    args: dict[str, Any] = {
        "ReplicationGroupId": cluster.name, "ReplicationGroupDescription": f"Managed by reconciler ({cluster.ref})",
        "Engine": want["engine"], "CacheNodeType": want["nodeType"], "NumCacheClusters": want["replicas"] + 1,
        "Port": want["port"], "CacheSubnetGroupName": resource_name(cluster.name), "SecurityGroupIds": [sg_id],
        "TransitEncryptionEnabled": want["transitEncryption"],
        "AutomaticFailoverEnabled": want["automaticFailover"],
    }
    if cluster.spec.spec.get("engineVersion"):
        args["EngineVersion"] = cluster.spec.spec["engineVersion"]
    if cluster.spec.spec.get("authToken"):
        tags[FINGERPRINT_TAG] = want["authToken"]
    args["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return args


def create_requests(cluster: Cluster) -> list[Request]:
    """What create() sends, from the spec alone: CreateReplicationGroup (a security group id in place of the one
    AWS assigns, no token), CreateCacheSubnetGroup and EC2's CreateSecurityGroup, each with its tags."""
    want = cluster.desired()
    want["automaticFailover"] = bool(cluster.spec.spec.get("automaticFailover", want["replicas"] > 0))
    want["authToken"] = "0" * 24  # a fingerprint's shape (the token itself is never in a request built here)
    args = create_args(cluster, want, "sg-00000000000000000")
    tags = {t["Key"]: t["Value"] for t in args["Tags"]}
    subnet_group = {"CacheSubnetGroupName": resource_name(cluster.name), "SubnetIds": cluster.spec.spec.get(
        "subnetIds") or ["subnet-00000000"], "CacheSubnetGroupDescription": "Managed by reconciler",
        "Tags": [{"Key": k, "Value": v} for k, v in want["tags"].items()]}
    group = {"GroupName": resource_name(cluster.name), "Description": group_description(cluster, ),
             "VpcId": cluster.spec.spec.get("vpcId") or "vpc-00000000"}
    ownership = ownership_tags(cluster.name, cluster.spec.environment)
    return [Request("elasticache", "CreateReplicationGroup", args, tags=tags, kept=1),
            Request("elasticache", "CreateCacheSubnetGroup", subnet_group, tags=dict(want["tags"])),
            Request("ec2", "CreateSecurityGroup", group, where=("metadata", "name"), tags=ownership, model=False)]
