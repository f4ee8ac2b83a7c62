"""ElastiCache: the `CacheCluster` kind (a Redis replication group), with its own security
group (ingress only on the port, only from `allowFrom`) and cache subnet group.

Over 500 lines because one module per AWS service is the contract (DESIGN.md, "Resources"): the
kind's field facts, observe, its steps (replicas, failover, the token rotation), export and the
security group it owns read the same facts and change together.

AWS facts that shape this module:
- The replication group's description lacks the engine version and security groups: they
  are read from its member cache clusters (one DescribeCacheClusters per cycle, shared).
- In place (ModifyReplicationGroup, ApplyImmediately): node type, engine version upgrade,
  security groups, automatic failover, AUTH token. Replicas change with
  Increase/DecreaseReplicaCount. AWS takes each only while the group is `available`, and each
  leaves it `modifying` for minutes: one step per modification, across cycles.
- Automatic failover needs a replica: replicas to 0 turns it off first; more replicas turn it on
  after (it follows `replicas > 0` unless the spec sets automaticFailover).
- AUTH token: ROTATE (old and new both valid), then SET once that has landed (only the new one),
  then the fingerprint tag. The phase is tagged before each call (`reconciler:auth-rotation`)
  and AuthTokenLastModifiedDate says whether it landed, so an interrupted rotation resumes.
- Engine, port and transit encryption force replacement
  here (AWS can migrate TLS in place on recent engines only through a two-step mode change,
  which this kind does not drive).
- An AUTH token needs transit encryption, 16 to 128 characters, and (CreateReplicationGroup) only letters,
  digits and ! & # $ ^ < > -. ModifyReplicationGroup's own rule is looser (no / " @ %), but the User Guide
  states the strict one for every token, and a token rotated in must also create the cluster again on a
  replacement: the agent holds every token to the strict rule, at `validate` (when its variable is set)
  and before any call. The live token cannot be read: the agent keeps a
  salted scrypt fingerprint of it in the tag `reconciler:auth-fingerprint` to notice a
  changed reference value (then ROTATE, SET, record: above).
- Names: the security group and subnet group are `reconciler-<name>`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import string
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints
from reconciler.aws.client import error_code
from reconciler.aws.secrets import describe_ref, resolve
from reconciler.core.diff import MISSING, Field, diff_fields
from reconciler.core.errors import ReconcilerError, SpecError, SpecProblem
from reconciler.core.types import FieldChange, Live, Request, Step, ownership_tags
from reconciler.kinds import register
from reconciler.kinds.base import Resource, field_names, tag_changes

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported
    from reconciler.spec.documents import Path_, Spec

FINGERPRINT_TAG = "reconciler:auth-fingerprint"  # the token that is SET (the only one accepted)
ROTATION_TAG = "reconciler:auth-rotation"        # <fingerprint>:<rotate|set>:<epoch> while rotating
INTERNAL_TAGS = (FINGERPRINT_TAG, ROTATION_TAG)
DEFAULTS = {"engine": "redis", "nodeType": "cache.t3.micro", "replicas": 0, "port": 6379,
            "transitEncryption": True}


TOKEN_SPECIALS = "!&#$^<>-"
_TOKEN_ALLOWED = frozenset(string.ascii_letters + string.digits + TOKEN_SPECIALS)
TOKEN_RULE = ("AWS takes an AUTH token of 16 to 128 characters: letters, digits and only the special characters "
              "!, &, #, $, ^, <, >, - (ElastiCache API Reference, CreateReplicationGroup, AuthToken: \"The only "
              "permitted printable special characters are !, &, #, $, ^, <, >, and -\")")


def token_problem(token: str) -> str | None:
    """Why AWS would refuse this AUTH token (without showing it), or None."""
    if not 16 <= len(token) <= 128:
        return f"the token has {len(token)} characters; {TOKEN_RULE}"
    refused = sorted(set(token) - _TOKEN_ALLOWED)
    if refused:
        shown = " ".join(repr(c) if c.isascii() and c.isprintable() and not c.isspace() else f"U+{ord(c):04X}"
                         for c in refused)
        return f"the token contains {shown}; {TOKEN_RULE}"
    return None


def fingerprint(token: str, salt: str) -> str:
    """A slow, salted hash: tells a changed token apart without revealing it."""
    return hashlib.scrypt(token.encode(), salt=salt.encode(), n=2**14, r=8, p=1, dklen=12).hex()


def resource_name(spec_name: str) -> str:
    return f"reconciler-{spec_name}"


def _open_to_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


@register
class CacheCluster(Resource):
    """An ElastiCache Redis replication group reachable only from given security groups."""

    kind = "CacheCluster"
    tagging_type = "elasticache:replicationgroup"  # its type in the Resource Groups Tagging API
    # ModifyReplicationGroup {replicationGroupId}, AddTagsToResource {resourceName: ARN}, a member's
    # {cacheClusterId}; its security group's rules: AuthorizeSecurityGroupIngress {groupId}
    event_keys = {"elasticache.amazonaws.com": ("replicationGroupId", "resourceName", "cacheClusterId"),
                  "ec2.amazonaws.com": ("groupId",)}
    service = "elasticache"
    order = 40
    takes = {"create": "elasticache.create"}
    data_bearing = True
    fields = (
        Field("engine", default="redis", replace=True, api="Engine"),
        Field("engineVersion", api="member CacheCluster.EngineVersion"),
        Field("nodeType", default="cache.t3.micro", api="CacheNodeType"),
        Field("replicas", default=0, api="MemberClusters (count - 1)"),
        Field("automaticFailover", api="AutomaticFailover (default: on when replicas > 0)"),
        Field("port", default=6379, replace=True, api="NodeGroups[].PrimaryEndpoint.Port"),
        Field("transitEncryption", default=True, replace=True, api="TransitEncryptionEnabled"),
        Field("authToken", sensitive=True, api="AuthToken (fingerprint tag)"),
        Field("subnetIds", mode="set", api="CacheSubnetGroup.Subnets"),
        Field("allowFrom", default=[], mode="set", api="SecurityGroup ingress"),
        Field("securityGroups", api="member CacheCluster.SecurityGroups"),
        Field("tags", default={}, mode="map", api="Tags"),
    )
    iam_actions = (
        "elasticache:DescribeReplicationGroups", "elasticache:DescribeCacheClusters",
        "elasticache:DescribeCacheSubnetGroups", "elasticache:ListTagsForResource",
        "elasticache:CreateReplicationGroup", "elasticache:ModifyReplicationGroup",
        "elasticache:IncreaseReplicaCount", "elasticache:DecreaseReplicaCount",
        "elasticache:DeleteReplicationGroup", "elasticache:CreateCacheSubnetGroup",
        "elasticache:ModifyCacheSubnetGroup", "elasticache:DeleteCacheSubnetGroup",
        "elasticache:AddTagsToResource", "elasticache:RemoveTagsFromResource",
        "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
        "ec2:CreateTags", "secretsmanager:GetSecretValue", "ssm:GetParameter",
    )
    # The agent's security group is tagged as its own at creation; its ingress is changed only there.
    iam_tagged = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup")
    iam_request_tagged = ("ec2:CreateSecurityGroup", "ec2:CreateTags")

    @classmethod
    def iam_resources(cls, spec: Spec | None) -> dict[str, list[str]]:
        name = spec.name if spec else "*"
        arn = "arn:aws:elasticache:*:*:"
        out = {"elasticache": [f"{arn}replicationgroup:{name}", f"{arn}cluster:{name}-*",
                               f"{arn}subnetgroup:{resource_name(name)}", f"{arn}snapshot:{name}-final-*",
                               f"{arn}parametergroup:*", f"{arn}user:*", f"{arn}usergroup:*"]}
        token = (spec.spec.get("authToken") or {}) if spec else {"fromSecretsManager": "*", "fromSsmParameter": "*"}
        if "fromSecretsManager" in token:
            out["secretsmanager"] = [f"arn:aws:secretsmanager:*:*:secret:{token['fromSecretsManager']}*"]
        if "fromSsmParameter" in token:
            out["ssm"] = [f"arn:aws:ssm:*:*:parameter/{token['fromSsmParameter'].lstrip('/')}"]
        return out

    @classmethod
    def check_spec(cls, spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
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
                if _open_to_world(entry["cidr"]) and not world_ok:
                    problems.append((("spec", "allowFrom", i, "cidr"),
                                     f"{entry['cidr']} opens the cache to the whole internet; allow the bastion's "
                                     "security group instead, or add 'open-to-world' to metadata.securityExceptions"))
        if s.get("automaticFailover") and not s.get("replicas"):
            problems.append((("spec", "automaticFailover"), "automatic failover needs at least one replica "
                                                            "(spec.replicas >= 1)"))
        if s.get("subnetIds") and not s.get("vpcId"):
            problems.append((("spec", "subnetIds"), "subnetIds need spec.vpcId (the VPC they belong to)"))
        return problems

    # ------------------------------------------------------------------ desired state

    @property
    def security_group(self) -> str:
        """The security group whose ingress the agent manages: the spec's, or its own."""
        return str(self.spec.spec.get("securityGroup") or resource_name(self.name))

    def _network(self, aws: Aws) -> dict[str, Any]:
        """The VPC, subnets and allowFrom group ids this spec resolves to (cached per cycle)."""
        return aws.cached(f"elasticache:network:{self.name}", lambda: self._resolve_network(aws))

    def _resolve_network(self, aws: Aws) -> dict[str, Any]:
        spec = self.spec.spec
        vpc = spec.get("vpcId") or self._live_vpc(aws) or _default_vpc(aws)
        sources = []
        for entry in spec.get("allowFrom") or []:
            if "securityGroupId" in entry:
                sources.append(entry["securityGroupId"])
            elif "cidr" in entry:
                sources.append(str(ipaddress.ip_network(entry["cidr"], strict=False)))
            else:
                found = [g for g in _vpc_groups(aws, vpc) if g["GroupName"] == entry["securityGroupName"]]
                if not found:
                    raise ReconcilerError(f"DescribeSecurityGroups: no security group named "
                                          f"{entry['securityGroupName']!r} in {vpc} (spec.allowFrom)")
                sources.append(found[0]["GroupId"])
        return {"vpc": vpc, "subnets": sorted(spec.get("subnetIds") or []), "sources": sources}

    def _live_vpc(self, aws: Aws) -> str | None:
        """The VPC of the live cluster (its subnet group's), from the listings observe reads anyway."""
        ec = aws.client("elasticache")
        clusters = aws.cached("elasticache:clusters", lambda: _list(ec, "describe_cache_clusters", "CacheClusters"))
        names = {c.get("CacheSubnetGroupName") for c in clusters if c.get("ReplicationGroupId") == self.name}
        if not names - {None}:
            return None
        groups = aws.cached("elasticache:subnet-groups",
                            lambda: _list(ec, "describe_cache_subnet_groups", "CacheSubnetGroups"))
        return next((str(g["VpcId"]) for g in groups if g["CacheSubnetGroupName"] in names and g.get("VpcId")), None)

    def _desired_state(self, aws: Aws) -> dict[str, Any]:
        spec, net = self.spec.spec, self._network(aws)
        state = self.desired()
        port = state["port"]
        state["subnetIds"] = net["subnets"] or MISSING  # unstated: the default subnets at creation, then not managed
        state["allowFrom"] = sorted(f"{src} tcp/{port}" for src in net["sources"])
        state["securityGroups"] = [self.security_group]
        state["automaticFailover"] = bool(spec.get("automaticFailover", state["replicas"] > 0))
        state["engineVersion"] = spec.get("engineVersion", MISSING)
        if spec.get("authToken"):
            token = resolve(spec["authToken"], aws).reveal()
            problem = token_problem(token)
            if problem:  # refused here, before any call: AWS would refuse the create or the rotation
                raise SpecError([SpecProblem(self.spec.file, self.spec.line_of(("spec", "authToken")),
                                             "spec.authToken", f"{describe_ref(spec['authToken'])}: {problem}")])
            state["authToken"] = fingerprint(token, self.name)
        else:
            state["authToken"] = None
        return state

    def prepare(self, aws: Aws) -> None:
        self._want = self._desired_state(aws)

    def diff(self, live: Live | None) -> list[FieldChange]:
        return diff_fields(self.fields, self._want, live.state if live else {}, stated=self.spec.spec.keys())

    # ------------------------------------------------------------------ observe

    def observe(self, aws: Aws) -> Live | None:
        ec = aws.client("elasticache")
        groups = aws.cached("elasticache:groups", lambda: _list(ec, "describe_replication_groups", "ReplicationGroups"))
        group = next((g for g in groups if g["ReplicationGroupId"] == self.name), None)
        if group is None:
            return None
        clusters = {c["CacheClusterId"]: c for c in aws.cached(
            "elasticache:clusters", lambda: _list(ec, "describe_cache_clusters", "CacheClusters"))}
        members = [clusters[m] for m in group.get("MemberClusters", []) if m in clusters]
        primary = (group.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
        tags = self.observed_tags(aws, group["ARN"], lambda: _read_tags(ec, group["ARN"]), agrees=self._token_settled)
        sg = _find_security_group(aws, self.security_group, self._network(aws)["vpc"])
        sg_names = _group_names(aws, [s["SecurityGroupId"] for m in members[:1] for s in m.get("SecurityGroups", [])],
                                self._network(aws)["vpc"])
        state: dict[str, Any] = {
            "engine": group.get("Engine", "redis"),
            "engineVersion": _version(members[0].get("EngineVersion") if members else None,
                                      self.spec.spec.get("engineVersion")),
            "nodeType": group.get("CacheNodeType"),
            "replicas": max(len(group.get("MemberClusters", [])) - 1, 0),
            "automaticFailover": group.get("AutomaticFailover") in ("enabled", "enabling"),
            "port": primary.get("Port"),
            "transitEncryption": bool(group.get("TransitEncryptionEnabled")),
            "authToken": self._live_token(group, tags),
            "subnetIds": _subnet_ids(aws, members[0].get("CacheSubnetGroupName") if members else None),
            "allowFrom": _ingress(sg) if sg else [],
            "securityGroups": sorted(sg_names),
            "tags": {k: v for k, v in tags.items() if k not in INTERNAL_TAGS},
        }
        status = group.get("Status", "available")
        changing = {**(members[0].get("PendingModifiedValues") or {} if members else {}),
                    **(group.get("PendingModifiedValues") or {})}
        modified = group.get("AuthTokenLastModifiedDate")
        created = group.get("ReplicationGroupCreateTime")
        return Live(id=group["ARN"], state=state, tags=tags, pending=_pending(status, changing, members),
                    pending_since=created.isoformat() if status == "creating" and hasattr(created, "isoformat")
                    else None,
                    deleting=status == "deleting",
                    extra={"endpoint": primary, "sg": sg, "members": [m["CacheClusterId"] for m in members],
                           "status": status, "tokenChanging": "AuthTokenStatus" in changing,
                           "tokenModified": modified.timestamp() if hasattr(modified, "timestamp") else None,
                           "subnetGroup": members[0].get("CacheSubnetGroupName") if members else None,
                           "recordFingerprint": bool(group.get("AuthTokenEnabled"))
                           and FINGERPRINT_TAG not in tags})

    def event_ids(self, live: Live | None) -> set[str]:
        ids = super().event_ids(live)
        if live is not None:
            ids |= set(live.extra.get("members") or ())
            ids |= {live.extra["sg"]["GroupId"]} if live.extra.get("sg") else set()
        return ids

    def _token_settled(self, tags: dict[str, str]) -> bool:
        """Listed tags may serve only when they show no token work: no rotation under way, and the token
        the spec references already recorded (else they are read directly: the rotation's steps go by them)."""
        return ROTATION_TAG not in tags and tags.get(FINGERPRINT_TAG) == self._want.get("authToken")

    def _live_token(self, group: dict[str, Any], tags: dict[str, str]) -> str | None:
        """The live token's fingerprint. A cluster built by hand has a token but no fingerprint:
        the referenced token is taken to be it (the health check proves it) and recorded."""
        if not group.get("AuthTokenEnabled"):
            return None
        return tags.get(FINGERPRINT_TAG) or self._want.get("authToken")

    # ------------------------------------------------------------------ create / update / delete

    def create(self, aws: Aws) -> None:
        ec, want, net = aws.client("elasticache"), self._want, self._network(aws)
        sg_id = self._ensure_security_group(aws, want)
        _ensure_subnet_group(ec, resource_name(self.name), net["subnets"] or _default_subnets(aws, net["vpc"]),
                             want["tags"])
        args = self._create_args(want, sg_id)
        if self.spec.spec.get("authToken"):
            args["AuthToken"] = resolve(self.spec.spec["authToken"], aws).reveal()
        ec.create_replication_group(**args)

    def _create_args(self, want: dict[str, Any], sg_id: str) -> dict[str, Any]:
        """CreateReplicationGroup's parameters but the AUTH token (a secret: resolved only to be sent)."""
        tags = dict(want["tags"])
        args: dict[str, Any] = {
            "ReplicationGroupId": self.name, "ReplicationGroupDescription": f"Managed by reconciler ({self.ref})",
            "Engine": want["engine"], "CacheNodeType": want["nodeType"], "NumCacheClusters": want["replicas"] + 1,
            "Port": want["port"], "CacheSubnetGroupName": resource_name(self.name), "SecurityGroupIds": [sg_id],
            "TransitEncryptionEnabled": want["transitEncryption"],
            "AutomaticFailoverEnabled": want["automaticFailover"],
        }
        if self.spec.spec.get("engineVersion"):
            args["EngineVersion"] = self.spec.spec["engineVersion"]
        if self.spec.spec.get("authToken"):
            tags[FINGERPRINT_TAG] = want["authToken"]
        args["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return args

    def requests(self) -> list[Request]:
        """What create() sends, from the spec alone: CreateReplicationGroup (a security group id in place of the one
        AWS assigns, no token), CreateCacheSubnetGroup and EC2's CreateSecurityGroup, each with its tags."""
        want = self.desired()
        want["automaticFailover"] = bool(self.spec.spec.get("automaticFailover", want["replicas"] > 0))
        want["authToken"] = "0" * 24  # a fingerprint's shape (the token itself is never in a request built here)
        args = self._create_args(want, "sg-00000000000000000")
        tags = {t["Key"]: t["Value"] for t in args["Tags"]}
        subnet_group = {"CacheSubnetGroupName": resource_name(self.name), "SubnetIds": self.spec.spec.get(
            "subnetIds") or ["subnet-00000000"], "CacheSubnetGroupDescription": "Managed by reconciler",
            "Tags": [{"Key": k, "Value": v} for k, v in want["tags"].items()]}
        group = {"GroupName": resource_name(self.name), "Description": self._group_description(),
                 "VpcId": self.spec.spec.get("vpcId") or "vpc-00000000"}
        ownership = ownership_tags(self.name, self.spec.environment)
        return [Request("elasticache", "CreateReplicationGroup", args, tags=tags, kept=1),
                Request("elasticache", "CreateCacheSubnetGroup", subnet_group, tags=dict(want["tags"])),
                Request("ec2", "CreateSecurityGroup", group, where=("metadata", "name"), tags=ownership, model=False)]

    def _group_description(self) -> str:
        return f"Managed by reconciler: Redis {self.name}, ingress only from allowFrom"

    def _ensure_security_group(self, aws: Aws, want: dict[str, Any]) -> str:
        ec2, net = aws.client("ec2"), self._network(aws)
        sg = _find_security_group(aws, self.security_group, net["vpc"], fresh=True)
        if sg is None and self.spec.spec.get("securityGroup"):
            raise ReconcilerError(f"DescribeSecurityGroups: no security group named {self.security_group!r} in "
                                  f"{net['vpc']} (spec.securityGroup)")
        if sg is None:
            sg_id = ec2.create_security_group(
                GroupName=resource_name(self.name), VpcId=net["vpc"], Description=self._group_description(),
                TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                    {"Key": k, "Value": v} for k, v in ownership_tags(self.name, self.spec.environment).items()]}]
            )["GroupId"]
            _set_ingress(ec2, sg_id, [], want["allowFrom"])
            return str(sg_id)
        _set_ingress(ec2, sg["GroupId"], _ingress(sg), want["allowFrom"])
        return str(sg["GroupId"])

    def delete(self, aws: Aws, live: Live) -> None:
        ec = aws.client("elasticache")
        ec.delete_replication_group(ReplicationGroupId=self.name,
                                    FinalSnapshotIdentifier=f"{self.name}-final-{int(time.time())}")

    def steps(self, aws: Aws, action: str, live: Live | None, changes: Sequence[FieldChange]) -> list[Step]:
        """One step per modification AWS accepts at a time; each leaves the group `modifying`, and
        the next waits until it is `available` again (AWS: InvalidReplicationGroupState)."""
        if action == "create":
            return super().steps(aws, action, live, changes)
        assert live is not None
        busy = _busy(live)
        if action == "delete":
            return [Step(f"DeleteReplicationGroup {self.name} (final snapshot first)", lambda: self.delete(aws, live),
                         settles=True, wait=busy, takes="elasticache.delete")]
        ec = lambda: aws.client("elasticache")  # noqa: E731
        want, fields = self._want, set(field_names(changes))
        steps: list[Step] = []
        if "allowFrom" in fields:  # the security group is EC2's: fixed at once, whatever the cache is doing
            steps.append(Step("security group ingress: exactly " + (", ".join(want["allowFrom"]) or "nothing"),
                              lambda: _set_ingress(aws.client("ec2"), live.extra["sg"]["GroupId"],
                                                   live.state["allowFrom"], want["allowFrom"])))  # EC2: at once
        put, drop = tag_changes(changes)
        if want["authToken"] and live.extra.get("recordFingerprint"):
            put[FINGERPRINT_TAG] = want["authToken"]
        if put or drop:
            steps.append(Step("AddTagsToResource/RemoveTagsFromResource: " + ", ".join([*put, *drop]),
                              lambda: _update_tags(ec(), live.id, put, drop), wait=busy))
        if "subnetIds" in fields:
            steps.append(Step("ModifyCacheSubnetGroup: " + ", ".join(want["subnetIds"]),
                              lambda: ec().modify_cache_subnet_group(
                                  CacheSubnetGroupName=live.extra["subnetGroup"] or resource_name(self.name),
                                  SubnetIds=want["subnetIds"]), wait=busy))
        steps += self._replica_steps(ec, live, want, fields, busy, down=True)
        if "nodeType" in fields:
            steps.append(self._modify(ec, f"node type {live.state['nodeType']} -> {want['nodeType']}", busy,
                                      "elasticache.scale", CacheNodeType=want["nodeType"]))
        if "engineVersion" in fields:
            steps.append(self._modify(ec, f"engine version -> {self.spec.spec['engineVersion']}", busy,
                                      "elasticache.upgrade", EngineVersion=self.spec.spec["engineVersion"]))
        if "securityGroups" in fields:
            steps.append(Step(f"ModifyReplicationGroup: security group -> {self.security_group}",
                              lambda: ec().modify_replication_group(
                                  ReplicationGroupId=self.name, ApplyImmediately=True,
                                  SecurityGroupIds=[self._ensure_security_group(aws, want)]),
                              settles=True, wait=busy, takes="elasticache.settings"))
        steps += self._replica_steps(ec, live, want, fields, busy, down=False)
        if "authToken" in fields and self.spec.spec.get("authToken"):
            steps += self._token_steps(aws, live, busy)
        return steps

    def _modify(self, ec: Any, what: str, busy: str | None, takes: str = "elasticache.settings", **args: Any) -> Step:
        return Step(f"ModifyReplicationGroup: {what}", lambda: ec().modify_replication_group(
            ReplicationGroupId=self.name, ApplyImmediately=True, **args), settles=True, wait=busy, takes=takes)

    def _replica_steps(self, ec: Any, live: Live, want: dict[str, Any], fields: set[str], busy: str | None,
                       down: bool) -> list[Step]:
        """Fewer replicas (automatic failover off first when none remain) or more replicas (failover on
        after): AWS keeps automatic failover only with at least one replica."""
        have, count = live.state["replicas"], want["replicas"]
        failover_on = live.state["automaticFailover"]
        steps: list[Step] = []
        if down:
            if "replicas" in fields and count < have:
                if count == 0 and failover_on:
                    steps.append(self._modify(ec, "automatic failover off (AWS needs that before the last replica "
                                                  "goes)", busy, AutomaticFailoverEnabled=False, MultiAZEnabled=False))
                steps.append(Step(f"DecreaseReplicaCount: {have} -> {count}", lambda: ec().decrease_replica_count(
                    ReplicationGroupId=self.name, NewReplicaCount=count, ApplyImmediately=True),
                    settles=True, wait=busy, takes="elasticache.replicas"))
            return steps
        if "replicas" in fields and count > have:
            steps.append(Step(f"IncreaseReplicaCount: {have} -> {count}", lambda: ec().increase_replica_count(
                ReplicationGroupId=self.name, NewReplicaCount=count, ApplyImmediately=True), settles=True, wait=busy,
                takes="elasticache.replicas"))
        elif "automaticFailover" in fields and not want["automaticFailover"] and failover_on and count >= have:
            steps.append(self._modify(ec, "automatic failover off", busy, AutomaticFailoverEnabled=False,
                                      MultiAZEnabled=False))
        if want["automaticFailover"] and not failover_on and fields & {"replicas", "automaticFailover"}:
            steps.append(self._modify(ec, "automatic failover on", busy, AutomaticFailoverEnabled=True))
        return steps

    def _token_steps(self, aws: Aws, live: Live, busy: str | None) -> list[Step]:
        """ROTATE (both tokens valid), then, once that has landed, SET (only the new one), then record
        the new token's fingerprint. Each phase is written to a tag before its call, and AWS's
        AuthTokenLastModifiedDate tells whether it has landed, so an interrupted rotation resumes."""
        ec = lambda: aws.client("elasticache")  # noqa: E731
        want = self._want["authToken"]
        phase, landed = _rotation(live, want)

        def call(strategy: str) -> Step:
            def run() -> None:
                token = resolve(self.spec.spec["authToken"], aws).reveal()
                ec().add_tags_to_resource(ResourceName=live.id, Tags=[
                    {"Key": ROTATION_TAG, "Value": f"{want}:{strategy.lower()}:{time.time():.3f}"}])
                ec().modify_replication_group(ReplicationGroupId=self.name, ApplyImmediately=True, AuthToken=token,
                                              AuthTokenUpdateStrategy=strategy)

            meaning = ("the new token is accepted beside the old one" if strategy == "ROTATE"
                       else "only the new token is accepted from then on")
            return Step(f"ModifyReplicationGroup: AUTH token {strategy} ({meaning})", run, settles=True, wait=busy,
                        takes="elasticache.auth")

        record = Step("record the new token's fingerprint (tags)", lambda: _update_tags(
            ec(), live.id, {FINGERPRINT_TAG: want}, [ROTATION_TAG]), wait=busy)
        if phase == "set" and landed:
            return [record]
        if (phase == "rotate" and landed) or phase == "set":
            return [call("SET"), record]
        return [call("ROTATE"), call("SET"), record]

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        if action in ("replace", "delete"):
            return ["deleting the cluster takes a final snapshot first, then its data is gone"]
        return []

    @classmethod
    def export(cls, aws: Aws, options: dict[str, Any]) -> list[Exported]:
        from reconciler.kinds.exported import Exported, user_tags

        ec, ec2 = aws.client("elasticache"), aws.client("ec2")
        clusters = {c["CacheClusterId"]: c for c in _list(ec, "describe_cache_clusters", "CacheClusters")}
        subnet_groups = {g["CacheSubnetGroupName"]: g for g in
                         _list(ec, "describe_cache_subnet_groups", "CacheSubnetGroups")}
        out = []
        for group in _list(ec, "describe_replication_groups", "ReplicationGroups"):
            name = group["ReplicationGroupId"]
            tags = _read_tags(ec, group["ARN"])
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
                spec["allowFrom"] = _export_allow(ec2, sg, port, item)
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


# ---------------------------------------------------------------------- helpers


def _pending(status: str, changing: dict[str, Any], members: list[dict[str, Any]]) -> str | None:
    """What AWS is doing to the group, in words: `replication group modifying (CacheNodeType ->
    cache.t3.small)`; None when it and its members are available."""
    busy = [m["CacheClusterId"] + " " + m["CacheClusterStatus"] for m in members
            if m.get("CacheClusterStatus", "available") != "available"]
    if status == "available" and not busy:
        return None
    what = ", ".join(f"{k} -> {v}" for k, v in changing.items())
    return f"replication group {status}" + (f" ({what})" if what else "") + (
        f"; members {', '.join(busy)}" if busy and status != "creating" else "")


def _busy(live: Live) -> str | None:
    """Why a modification must wait: AWS takes one only while the group is `available`."""
    return live.pending if live.extra.get("status", "available") != "available" else None


def _rotation(live: Live, want: str) -> tuple[str | None, bool]:
    """The AUTH token rotation the tags record for token `want`: its phase (rotate | set | None) and
    whether AWS has carried it out: AuthTokenLastModifiedDate after the phase was recorded (the tag is written
    just before the call, in milliseconds: a ROTATE that landed within the second the SET was recorded in
    must not pass for the SET)."""
    fingerprint, _, rest = live.tags.get(ROTATION_TAG, "").partition(":")
    phase, _, sent = rest.partition(":")
    try:
        sent_at = float(sent)
    except ValueError:
        return None, False
    if fingerprint != want or phase not in ("rotate", "set"):
        return None, False
    modified = live.extra.get("tokenModified")
    return phase, modified is not None and modified > sent_at and not live.extra.get("tokenChanging")


def _update_tags(ec: Any, arn: str, put: dict[str, str], drop: list[str]) -> None:
    if put:
        ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": k, "Value": v} for k, v in put.items()])
    if drop:
        ec.remove_tags_from_resource(ResourceName=arn, TagKeys=drop)


def _export_allow(ec2: Any, sg: dict[str, Any], port: int, item: Exported) -> list[dict[str, str]]:
    """A security group's ingress as allowFrom entries (names where a group has one)."""
    entries: list[dict[str, str]] = []
    for rule in _ingress(sg):
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
            if _open_to_world(source):
                item.exceptions.append("open-to-world")
                item.warnings.append(f"spec.allowFrom: {source} opens the cache to the "
                                     "internet; exported as is with securityExceptions: [open-to-world]")
    return entries


def _list(client: Any, operation: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**(
            {"ShowCacheNodeInfo": True} if operation == "describe_cache_clusters" else {})):
        out += page.get(key, [])
    return out


def _version(live: str | None, wanted: str | None) -> str | None:
    """Live `7.1.0` satisfies a spec's `7.1` (AWS reports full versions)."""
    if live and wanted and live.startswith(wanted + "."):
        return wanted
    return live


def _default_subnet_list(aws: Aws) -> list[dict[str, Any]]:
    """The default subnets (one per zone): only the default VPC has them, so they also name it."""
    return aws.cached("ec2:default-subnets", lambda: aws.client("ec2").describe_subnets(Filters=[
        {"Name": "default-for-az", "Values": ["true"]}])["Subnets"])


def _default_vpc(aws: Aws) -> str:
    subnets = _default_subnet_list(aws)
    if subnets:
        return str(subnets[0]["VpcId"])
    vpcs = aws.cached("ec2:default-vpc", lambda: aws.client("ec2").describe_vpcs(
        Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"])
    if not vpcs:
        raise ReconcilerError("DescribeVpcs: this account and region have no default VPC; set spec.vpcId")
    return str(vpcs[0]["VpcId"])


def _default_subnets(aws: Aws, vpc: str) -> list[str]:
    subnets = [s for s in _default_subnet_list(aws) if s["VpcId"] == vpc]
    if not subnets:
        raise ReconcilerError(f"DescribeSubnets: {vpc} has no default subnets; set spec.subnetIds")
    return [s["SubnetId"] for s in subnets]


def _vpc_groups(aws: Aws, vpc: str) -> list[dict[str, Any]]:
    """Every security group of the VPC, listed once per cycle: the allowFrom names, the agent's own group
    and the groups' names all come from it."""
    def load() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in aws.client("ec2").get_paginator("describe_security_groups").paginate(
                Filters=[{"Name": "vpc-id", "Values": [vpc]}]):
            out += page["SecurityGroups"]
        return out

    return aws.cached(f"ec2:groups:{vpc}", load)


def _find_security_group(aws: Aws, name: str, vpc: str, fresh: bool = False) -> dict[str, Any] | None:
    def load() -> list[dict[str, Any]]:
        return list(aws.client("ec2").describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"])

    found = load() if fresh else [g for g in _vpc_groups(aws, vpc) if g["GroupName"] == name]
    return found[0] if found else None


def _group_names(aws: Aws, ids: list[str], vpc: str) -> list[str]:
    if not ids:
        return []
    listed = {g["GroupId"]: g["GroupName"] for g in _vpc_groups(aws, vpc)}
    if all(i in listed for i in ids):
        return [listed[i] for i in ids]
    groups = aws.client("ec2").describe_security_groups(GroupIds=ids)["SecurityGroups"]  # in another VPC
    return [g["GroupName"] for g in groups]


def _read_tags(ec: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]}


def _subnet_ids(aws: Aws, group_name: str | None) -> list[str]:
    if not group_name:
        return []
    ec = aws.client("elasticache")
    groups = aws.cached("elasticache:subnet-groups",
                        lambda: _list(ec, "describe_cache_subnet_groups", "CacheSubnetGroups"))
    group = next((g for g in groups if g["CacheSubnetGroupName"] == group_name), None)
    return sorted(s["SubnetIdentifier"] for s in group.get("Subnets", [])) if group else []


def _ingress(sg: dict[str, Any]) -> list[str]:
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


def _permission(rule: str) -> dict[str, Any]:
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


def _set_ingress(ec2: Any, sg_id: str, have: list[str], want: list[str]) -> None:
    """Make the group's ingress exactly `want`: revoke extras (e.g. 0.0.0.0/0), restore missing."""
    extra = [r for r in have if r not in want]
    missing = [r for r in want if r not in have]
    if extra:
        ec2.revoke_security_group_ingress(GroupId=sg_id, IpPermissions=[_permission(r) for r in extra])
    if missing:
        ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[_permission(r) for r in missing])


def _ensure_subnet_group(ec: Any, name: str, subnets: list[str], tags: dict[str, str]) -> None:
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
