"""A cache's network, EC2's and ElastiCache's: the VPC and subnets it lives in (the default ones unless the spec
names them), its own security group (ingress only on its port, only from allowFrom) and its cache subnet group."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from reconciler.aws.failures import error_code
from reconciler.core.errors import ReconcilerError
from reconciler.core.types import ownership_tags

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.cache.protocol import Cluster
    from reconciler.kinds.exported import Exported


def resource_name(spec_name: str) -> str:
    return f"reconciler-{spec_name}"


def open_to_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def export_allow(ec2: Any, sg: dict[str, Any], port: int, item: Exported) -> list[dict[str, str]]:
    """A security group's ingress as allowFrom entries (names where a group has one)."""
    entries: list[dict[str, str]] = []
    for rule in ingress(sg):
        source, where = rule.split(" ", 1)
        if where != f"tcp/{port}":
            item.warnings.append(f"spec.allowFrom: the rule {rule} is not on the cache "
                                 "port and cannot be expressed; adoption revokes it")
            continue
        if source.startswith("sg-"):
            found = ec2.describe_security_groups(GroupIds=[source])["SecurityGroups"]
            entries.append({"securityGroupName": found[0]["GroupName"]} if found else {"securityGroupId": source})
        else:
            entries.append({"cidr": source})
            if open_to_world(source):
                item.exceptions.append("open-to-world")
                item.warnings.append(f"spec.allowFrom: {source} opens the cache to the "
                                     "internet; exported as is with securityExceptions: [open-to-world]")
    return entries


def list_all(client: Any, operation: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**(
            {"ShowCacheNodeInfo": True} if operation == "describe_cache_clusters" else {})):
        out += page.get(key, [])
    return out


def default_subnet_list(aws: Aws) -> list[dict[str, Any]]:
    """The default subnets (one per zone): only the default VPC has them, so they also name it."""
    return aws.cached("ec2:default-subnets", lambda: aws.client("ec2").describe_subnets(Filters=[
        {"Name": "default-for-az", "Values": ["true"]}])["Subnets"])


def default_vpc(aws: Aws) -> str:
    subnets = default_subnet_list(aws)
    if subnets:
        return str(subnets[0]["VpcId"])
    vpcs = aws.cached("ec2:default-vpc", lambda: aws.client("ec2").describe_vpcs(
        Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"])
    if not vpcs:
        raise ReconcilerError("DescribeVpcs: this account and region have no default VPC; set spec.vpcId")
    return str(vpcs[0]["VpcId"])


def default_subnets(aws: Aws, vpc: str) -> list[str]:
    subnets = [s for s in default_subnet_list(aws) if s["VpcId"] == vpc]
    if not subnets:
        raise ReconcilerError(f"DescribeSubnets: {vpc} has no default subnets; set spec.subnetIds")
    return [s["SubnetId"] for s in subnets]


def vpc_groups(aws: Aws, vpc: str) -> list[dict[str, Any]]:
    """Every security group of the VPC, listed once per cycle: the allowFrom names, the agent's own group
    and the groups' names all come from it."""
    def load() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in aws.client("ec2").get_paginator("describe_security_groups").paginate(
                Filters=[{"Name": "vpc-id", "Values": [vpc]}]):
            out += page["SecurityGroups"]
        return out

    return aws.cached(f"ec2:groups:{vpc}", load)


def find_security_group(aws: Aws, name: str, vpc: str, fresh: bool = False) -> dict[str, Any] | None:
    def load() -> list[dict[str, Any]]:
        return list(aws.client("ec2").describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"])

    found = load() if fresh else [g for g in vpc_groups(aws, vpc) if g["GroupName"] == name]
    return found[0] if found else None


def group_names(aws: Aws, ids: list[str], vpc: str) -> list[str]:
    if not ids:
        return []
    listed = {g["GroupId"]: g["GroupName"] for g in vpc_groups(aws, vpc)}
    if all(i in listed for i in ids):
        return [listed[i] for i in ids]
    groups = aws.client("ec2").describe_security_groups(GroupIds=ids)["SecurityGroups"]  # in another VPC
    return [g["GroupName"] for g in groups]


def subnet_ids(aws: Aws, group_name: str | None) -> list[str]:
    if not group_name:
        return []
    ec = aws.client("elasticache")
    groups = aws.cached("elasticache:subnet-groups",
                        lambda: list_all(ec, "describe_cache_subnet_groups", "CacheSubnetGroups"))
    group = next((g for g in groups if g["CacheSubnetGroupName"] == group_name), None)
    return sorted(s["SubnetIdentifier"] for s in group.get("Subnets", [])) if group else []


def ingress(sg: dict[str, Any]) -> list[str]:
    """Ingress rules as `source tcp/port` strings (a rule with several sources counts once each)."""
    rules = []
    for perm in sg.get("IpPermissions", []):
        proto = perm.get("IpProtocol")
        ports = f"{perm.get('FromPort')}" if perm.get("FromPort") == perm.get("ToPort") else \
            f"{perm.get('FromPort')}-{perm.get('ToPort')}"
        where = "all" if proto == "-1" else f"{proto}/{ports}"
        rules += [f"{p['GroupId']} {where}" for p in perm.get("UserIdGroupPairs", [])]
        rules += [f"{r['CidrIp']} {where}" for r in perm.get("IpRanges", [])]
        rules += [f"{r['CidrIpv6']} {where}" for r in perm.get("Ipv6Ranges", [])]
    return sorted(rules)


def permission(rule: str) -> dict[str, Any]:
    source, where = rule.split(" ", 1)
    if where == "all":
        perm: dict[str, Any] = {"IpProtocol": "-1"}
    else:
        proto, ports = where.split("/", 1)
        low, _, high = ports.partition("-")
        perm = {"IpProtocol": proto, "FromPort": int(low), "ToPort": int(high or low)}
    if source.startswith("sg-"):
        perm["UserIdGroupPairs"] = [{"GroupId": source}]
    elif ":" in source:
        perm["Ipv6Ranges"] = [{"CidrIpv6": source}]
    else:
        perm["IpRanges"] = [{"CidrIp": source}]
    return perm


def set_ingress(ec2: Any, sg_id: str, have: list[str], want: list[str]) -> None:
    """Make the group's ingress exactly `want`: revoke extras (e.g. 0.0.0.0/0), restore missing."""
    extra = [r for r in have if r not in want]
    missing = [r for r in want if r not in have]
    if extra:
        ec2.revoke_security_group_ingress(GroupId=sg_id, IpPermissions=[permission(r) for r in extra])
    if missing:
        ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[permission(r) for r in missing])


def ensure_subnet_group(ec: Any, name: str, subnets: list[str], tags: dict[str, str]) -> None:
    """The cache's subnet group: created when missing (looked up first, so no write is refused), tagged as the
    agent's in the same call (ElastiCache tags a subnet group at creation)."""
    try:
        ec.describe_cache_subnet_groups(CacheSubnetGroupName=name)
        return
    except ec.exceptions.ClientError as exc:
        if error_code(exc) != "CacheSubnetGroupNotFoundFault":
            raise
    ec.create_cache_subnet_group(CacheSubnetGroupName=name, SubnetIds=subnets,
                                 CacheSubnetGroupDescription="Managed by reconciler",
                                 Tags=[{"Key": k, "Value": v} for k, v in tags.items()])



def network(cluster: Cluster, aws: Aws) -> dict[str, Any]:
    """The VPC, subnets and allowFrom group ids this spec resolves to (cached per cycle)."""
    return aws.cached(f"elasticache:network:{cluster.name}", lambda: resolve_network(cluster, aws))


def resolve_network(cluster: Cluster, aws: Aws) -> dict[str, Any]:
    spec = cluster.spec.spec
    vpc = spec.get("vpcId") or live_vpc(cluster, aws) or default_vpc(aws)
    sources = []
    for entry in spec.get("allowFrom") or []:
        if "securityGroupId" in entry:
            sources.append(entry["securityGroupId"])
        elif "cidr" in entry:
            sources.append(str(ipaddress.ip_network(entry["cidr"], strict=False)))
        else:
            found = [g for g in vpc_groups(aws, vpc) if g["GroupName"] == entry["securityGroupName"]]
            if not found:
                raise ReconcilerError(f"DescribeSecurityGroups: no security group named "
                                      f"{entry['securityGroupName']!r} in {vpc} (spec.allowFrom)")
            sources.append(found[0]["GroupId"])
    return {"vpc": vpc, "subnets": sorted(spec.get("subnetIds") or []), "sources": sources}


def live_vpc(cluster: Cluster, aws: Aws) -> str | None:
    """The VPC of the live cluster (its subnet group's), from the listings observe reads anyway."""
    ec = aws.client("elasticache")
    clusters = aws.cached("elasticache:clusters", lambda: list_all(ec, "describe_cache_clusters", "CacheClusters"))
    names = {c.get("CacheSubnetGroupName") for c in clusters if c.get("ReplicationGroupId") == cluster.name}
    if not names - {None}:
        return None
    groups = aws.cached("elasticache:subnet-groups",
                        lambda: list_all(ec, "describe_cache_subnet_groups", "CacheSubnetGroups"))
    return next((str(g["VpcId"]) for g in groups if g["CacheSubnetGroupName"] in names and g.get("VpcId")), None)


def group_description(cluster: Cluster) -> str:
    return f"Managed by reconciler: Redis {cluster.name}, ingress only from allowFrom"


def ensure_security_group(cluster: Cluster, aws: Aws, want: dict[str, Any]) -> str:
    ec2, net = aws.client("ec2"), network(cluster, aws)
    sg = find_security_group(aws, cluster.security_group, net["vpc"], fresh=True)
    if sg is None and cluster.spec.spec.get("securityGroup"):
        raise ReconcilerError(f"DescribeSecurityGroups: no security group named {cluster.security_group!r} in "
                              f"{net['vpc']} (spec.securityGroup)")
    if sg is None:
        sg_id = ec2.create_security_group(
            GroupName=resource_name(cluster.name), VpcId=net["vpc"], Description=group_description(cluster, ),
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                {"Key": k, "Value": v} for k, v in ownership_tags(cluster.name, cluster.spec.environment).items()]}]
        )["GroupId"]
        set_ingress(ec2, sg_id, [], want["allowFrom"])
        return str(sg_id)
    set_ingress(ec2, sg["GroupId"], ingress(sg), want["allowFrom"])
    return str(sg["GroupId"])
