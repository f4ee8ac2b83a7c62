"""`reconciler export` for caches: every replication group as the spec a person would write (cluster mode left
out), its token never exported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.kinds.cache.calls import read_tags
from reconciler.kinds.cache.network import (
    export_allow,
    list_all,
    resource_name,
)

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported


def export_caches(aws: Aws, options: dict[str, Any]) -> list[Exported]:
    from reconciler.kinds.exported import Exported, user_tags

    ec, ec2 = aws.client("elasticache"), aws.client("ec2")
    clusters = {c["CacheClusterId"]: c for c in list_all(ec, "describe_cache_clusters", "CacheClusters")}
    subnet_groups = {g["CacheSubnetGroupName"]: g for g in
                     list_all(ec, "describe_cache_subnet_groups", "CacheSubnetGroups")}
    out = []
    for group in list_all(ec, "describe_replication_groups", "ReplicationGroups"):
        name = group["ReplicationGroupId"]
        tags = read_tags(ec, group["ARN"])
        item = Exported("CacheCluster", name, {}, tags)
        if group.get("ClusterEnabled"):
            item.warnings.append("cluster mode (sharding) cannot be expressed yet: "
                                 "not exported")
            item.skipped = True
            out.append(item)
            continue
        members = [clusters[m] for m in group.get("MemberClusters", []) if m in clusters]
        first = members[0] if members else {}
        port = ((group.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}).get("Port", 6379)
        spec: dict[str, Any] = {}
        if group.get("Engine", "redis") != "redis":
            spec["engine"] = group["Engine"]
        if first.get("EngineVersion"):
            spec["engineVersion"] = ".".join(first["EngineVersion"].split(".")[:2])
        spec["nodeType"] = group.get("CacheNodeType")
        replicas = max(len(group.get("MemberClusters", [])) - 1, 0)
        if replicas:
            spec["replicas"] = replicas
        failover = group.get("AutomaticFailover") in ("enabled", "enabling")
        if failover != (replicas > 0):
            spec["automaticFailover"] = failover
        if port != 6379:
            spec["port"] = port
        subnet_group = subnet_groups.get(first.get("CacheSubnetGroupName") or "")
        if subnet_group:
            spec["vpcId"] = subnet_group["VpcId"]
            spec["subnetIds"] = sorted(s["SubnetIdentifier"] for s in subnet_group.get("Subnets", []))
        sg_ids = [g["SecurityGroupId"] for g in first.get("SecurityGroups", [])]
        groups = ec2.describe_security_groups(GroupIds=sg_ids)["SecurityGroups"] if sg_ids else []
        if len(groups) > 1:
            item.warnings.append(f"spec.securityGroup: {len(groups)} security groups are "
                                 f"attached; only {groups[0]['GroupName']} is kept on adoption")
        if groups:
            sg = groups[0]
            if sg["GroupName"] != resource_name(name):
                spec["securityGroup"] = sg["GroupName"]
            spec["allowFrom"] = export_allow(ec2, sg, port, item)
        if not group.get("TransitEncryptionEnabled"):
            spec["transitEncryption"] = False
        if group.get("AuthTokenEnabled"):
            spec["authToken"] = {"fromEnv": "REDIS_AUTH_TOKEN"}
            item.comments["authToken:"] = ("the AUTH token is never exported: set REDIS_AUTH_TOKEN to the "
                                           "cluster's token (or use fromSecretsManager / fromSsmParameter)")
        if user_tags(tags):
            spec["tags"] = user_tags(tags)
        item.spec = spec
        out.append(item)
    return out
