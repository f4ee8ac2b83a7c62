"""ElastiCache: the `CacheCluster` kind's verbs (a Redis replication group), with its own security group
(ingress only on the port, only from `allowFrom`) and cache subnet group. Beside it: the network, EC2's part
(network.py), the AUTH token and its rotation (token.py), the modification steps (steps.py) and small calls
(calls.py), validation (validate.py) and export (export.py).

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

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws.secrets import describe_ref, resolve
from reconciler.core.diff import MISSING, Field, diff_fields
from reconciler.core.errors import SpecError, SpecProblem
from reconciler.core.types import FieldChange, Live, Step
from reconciler.kinds import register
from reconciler.kinds.base import Resource
from reconciler.kinds.cache.calls import busy_with, pending, read_tags, update_tags, version
from reconciler.kinds.cache.export import export_caches
from reconciler.kinds.cache.network import (
    default_subnets,
    ensure_security_group,
    ensure_subnet_group,
    find_security_group,
    group_names,
    ingress,
    list_all,
    network,
    resource_name,
    set_ingress,
    subnet_ids,
)
from reconciler.kinds.cache.steps import modify, replica_steps
from reconciler.kinds.cache.token import (
    FINGERPRINT_TAG,
    ROTATION_TAG,
    fingerprint,
    live_token,
    token_problem,
    token_settled,
    token_steps,
)
from reconciler.kinds.cache.validate import check_cache, create_args, create_requests
from reconciler.kinds.interfaces import EventMatched, Exportable, IamScoped, Validated
from reconciler.kinds.tags import field_names, observed_tags, tag_changes

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.spec.documents import Spec

INTERNAL_TAGS = (FINGERPRINT_TAG, ROTATION_TAG)
DEFAULTS = {"engine": "redis", "nodeType": "cache.t3.micro", "replicas": 0, "port": 6379,
            "transitEncryption": True}


@register
class CacheCluster(Resource, Validated, IamScoped, EventMatched, Exportable):
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

    check_spec = staticmethod(check_cache)  # the optional interfaces, from the kind's own modules
    requests = create_requests
    export = staticmethod(export_caches)

    # ------------------------------------------------------------------ desired state

    @property
    def security_group(self) -> str:
        """The security group whose ingress the agent manages: the spec's, or its own."""
        return str(self.spec.spec.get("securityGroup") or resource_name(self.name))

    def _desired_state(self, aws: Aws) -> dict[str, Any]:
        spec, net = self.spec.spec, network(self, aws)
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
        self.wanted = self._desired_state(aws)

    def diff(self, live: Live | None) -> list[FieldChange]:
        return diff_fields(self.fields, self.wanted, live.state if live else {}, stated=self.spec.spec.keys())

    # ------------------------------------------------------------------ observe

    def observe(self, aws: Aws) -> Live | None:
        ec = aws.client("elasticache")
        groups = aws.cached("elasticache:groups",
                            lambda: list_all(ec, "describe_replication_groups", "ReplicationGroups"))
        group = next((g for g in groups if g["ReplicationGroupId"] == self.name), None)
        if group is None:
            return None
        clusters = {c["CacheClusterId"]: c for c in aws.cached(
            "elasticache:clusters", lambda: list_all(ec, "describe_cache_clusters", "CacheClusters"))}
        members = [clusters[m] for m in group.get("MemberClusters", []) if m in clusters]
        primary = (group.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
        tags = observed_tags(aws, self.ref, group["ARN"], lambda: read_tags(ec, group["ARN"]),
                             agrees=lambda listed: token_settled(self, listed))
        sg = find_security_group(aws, self.security_group, network(self, aws)["vpc"])
        sg_names = group_names(aws, [s["SecurityGroupId"] for m in members[:1] for s in m.get("SecurityGroups", [])],
                                network(self, aws)["vpc"])
        state: dict[str, Any] = {
            "engine": group.get("Engine", "redis"),
            "engineVersion": version(members[0].get("EngineVersion") if members else None,
                                      self.spec.spec.get("engineVersion")),
            "nodeType": group.get("CacheNodeType"),
            "replicas": max(len(group.get("MemberClusters", [])) - 1, 0),
            "automaticFailover": group.get("AutomaticFailover") in ("enabled", "enabling"),
            "port": primary.get("Port"),
            "transitEncryption": bool(group.get("TransitEncryptionEnabled")),
            "authToken": live_token(self, group, tags),
            "subnetIds": subnet_ids(aws, members[0].get("CacheSubnetGroupName") if members else None),
            "allowFrom": ingress(sg) if sg else [],
            "securityGroups": sorted(sg_names),
            "tags": {k: v for k, v in tags.items() if k not in INTERNAL_TAGS},
        }
        status = group.get("Status", "available")
        changing = {**(members[0].get("PendingModifiedValues") or {} if members else {}),
                    **(group.get("PendingModifiedValues") or {})}
        modified = group.get("AuthTokenLastModifiedDate")
        created = group.get("ReplicationGroupCreateTime")
        return Live(id=group["ARN"], state=state, tags=tags, pending=pending(status, changing, members),
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

    # ------------------------------------------------------------------ create / update / delete

    def create(self, aws: Aws) -> None:
        ec, want, net = aws.client("elasticache"), self.wanted, network(self, aws)
        sg_id = ensure_security_group(self, aws, want)
        ensure_subnet_group(ec, resource_name(self.name), net["subnets"] or default_subnets(aws, net["vpc"]),
                             want["tags"])
        args = create_args(self, want, sg_id)
        if self.spec.spec.get("authToken"):
            args["AuthToken"] = resolve(self.spec.spec["authToken"], aws).reveal()
        ec.create_replication_group(**args)

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
        busy = busy_with(live)
        if action == "delete":
            return [Step(f"DeleteReplicationGroup {self.name} (final snapshot first)", lambda: self.delete(aws, live),
                         settles=True, wait=busy, takes="elasticache.delete")]
        ec = lambda: aws.client("elasticache")  # noqa: E731
        want, fields = self.wanted, set(field_names(changes))
        steps: list[Step] = []
        if "allowFrom" in fields:  # the security group is EC2's: fixed at once, whatever the cache is doing
            steps.append(Step("security group ingress: exactly " + (", ".join(want["allowFrom"]) or "nothing"),
                              lambda: set_ingress(aws.client("ec2"), live.extra["sg"]["GroupId"],
                                                   live.state["allowFrom"], want["allowFrom"])))  # EC2: at once
        put, drop = tag_changes(changes)
        if want["authToken"] and live.extra.get("recordFingerprint"):
            put[FINGERPRINT_TAG] = want["authToken"]
        if put or drop:
            steps.append(Step("AddTagsToResource/RemoveTagsFromResource: " + ", ".join([*put, *drop]),
                              lambda: update_tags(ec(), live.id, put, drop), wait=busy))
        if "subnetIds" in fields:
            steps.append(Step("ModifyCacheSubnetGroup: " + ", ".join(want["subnetIds"]),
                              lambda: ec().modify_cache_subnet_group(
                                  CacheSubnetGroupName=live.extra["subnetGroup"] or resource_name(self.name),
                                  SubnetIds=want["subnetIds"]), wait=busy))
        steps += replica_steps(self, ec, live, want, fields, busy, down=True)
        if "nodeType" in fields:
            steps.append(modify(self, ec, f"node type {live.state['nodeType']} -> {want['nodeType']}", busy,
                                      "elasticache.scale", CacheNodeType=want["nodeType"]))
        if "engineVersion" in fields:
            steps.append(modify(self, ec, f"engine version -> {self.spec.spec['engineVersion']}", busy,
                                      "elasticache.upgrade", EngineVersion=self.spec.spec["engineVersion"]))
        if "securityGroups" in fields:
            steps.append(Step(f"ModifyReplicationGroup: security group -> {self.security_group}",
                              lambda: ec().modify_replication_group(
                                  ReplicationGroupId=self.name, ApplyImmediately=True,
                                  SecurityGroupIds=[ensure_security_group(self, aws, want)]),
                              settles=True, wait=busy, takes="elasticache.settings"))
        steps += replica_steps(self, ec, live, want, fields, busy, down=False)
        if "authToken" in fields and self.spec.spec.get("authToken"):
            steps += token_steps(self, aws, live, busy)
        return steps

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        if action in ("replace", "delete"):
            return ["deleting the cluster takes a final snapshot first, then its data is gone"]
        return []


# ---------------------------------------------------------------------- helpers


