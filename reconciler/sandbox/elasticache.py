"""ElastiCache in the sandbox: moto's model with AWS's states, durations and refusals.

Fidelity fixes of moto 5.2.5 (each tested): NumCacheClusters honoured; member clusters shown by
DescribeCacheClusters; ModifyReplicationGroup applies EngineVersion, AuthToken and
SecurityGroupIds; Increase/DecreaseReplicaCount and DeleteCacheSubnetGroup (CacheSubnetGroupInUse while a
group uses it) implemented (cluster mode disabled); DeleteReplicationGroup takes the FinalSnapshotIdentifier
snapshot (moto dropped it); a deleted
group goes away (moto kept it `deleting` for ever); the Tagging API lists replication groups under
AWS's type `elasticache:replicationgroup` (moto: `elasticache:replication-group`).

AWS's time and rules (tests/integration/sandbox/test_aws_time.py, docs/sandbox.md):
- A new group and its members are `creating`, then `available`; a deleted one `deleting`, then gone
  (the id cannot be reused meanwhile: ReplicationGroupAlreadyExists).
- Modify, Increase/DecreaseReplicaCount, Delete, CreateSnapshot and AddTags/RemoveTags on a group
  that is not `available`: InvalidReplicationGroupState.
- A modification keeps the group `modifying` (PendingModifiedValues says what) and lands when done;
  new replicas are `creating` meanwhile; CreateSnapshot makes it `snapshotting`.
- AUTH token: 16-128 characters (InvalidParameterValue), only with transit encryption
  (InvalidParameterCombination). At CreateReplicationGroup letters, digits and ! & # $ ^ < > - only;
  at ModifyReplicationGroup printable ASCII without / " @ % (the API Reference's rule for each call;
  the User Guide's stricter one for both is a documented conflict, see docs/sandbox.md).
  AuthTokenUpdateStrategy defaults to ROTATE. ROTATE adds the token beside the old one (or enables
  AUTH on a group without one); SET is accepted only for the token last rotated, once that rotation has
  landed, and leaves it the only one; AuthTokenLastModifiedDate is set when it lands.
- Automatic failover and Multi-AZ need a replica: creating with either and one node, enabling either
  without a replica, or decreasing replicas below 1 with them on: InvalidParameterValue /
  InvalidParameterCombination.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult

from reconciler.sandbox.clock import current

_TOKEN_FORBIDDEN = set('/"@%')
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")
_CREATE_ALLOWED = set(string.ascii_letters + string.digits + "!&#$^<>-")


def _error(code: str, message: str) -> Exception:
    from moto.elasticache.exceptions import ElastiCacheException

    error = ElastiCacheException(message)
    error.code = code
    return error


def _not_available(group: Any) -> Exception:
    return _error("InvalidReplicationGroupState",
                  f"Replication group {group.replication_group_id} is not in available state "
                  f"(it is {group.status}).")


def _require_available(group: Any) -> None:
    if group.status != "available":
        raise _not_available(group)


def check_token(token: str, at_create: bool = False) -> None:
    """AWS's AUTH token constraints (API Reference: CreateReplicationGroup, ModifyReplicationGroup)."""
    if not 16 <= len(token) <= 128:
        raise _error("InvalidParameterValue", "Passwords length must be between 16-128 characters.")
    if at_create and not set(token) <= _CREATE_ALLOWED:
        raise _error("InvalidParameterValue", "The AUTH token may contain only alphanumeric characters and the "
                                              "special characters !, &, #, $, ^, <, >, and -.")
    if not set(token) <= _PRINTABLE or set(token) & _TOKEN_FORBIDDEN:
        raise _error("InvalidParameterValue", "The AUTH token must be printable ASCII characters and cannot "
                                              "contain any of the following characters: '/', '\"', '@', '%'.")


# AWS shows a pending node type or engine version on the member clusters (CacheCluster
# PendingModifiedValues), and a pending failover or token change on the group.
_GROUP_PENDING, _MEMBER_PENDING = "pending_modified_values", "_rs_member_pending"
_GROUP_PENDING_KEYS = ("AutomaticFailoverStatus", "AuthTokenStatus")


class _Work:
    """A group's running modifications: `modifying` until the last one lands."""

    @staticmethod
    def start(group: Any, status: str, duration: str, effect: Any, pending: dict[str, Any] | None = None) -> None:
        group.status = status
        group._rs_work = getattr(group, "_rs_work", 0) + 1
        for key, value in (pending or {}).items():
            where = _GROUP_PENDING if key in _GROUP_PENDING_KEYS else _MEMBER_PENDING
            setattr(group, where, {**(getattr(group, where, None) or {}), key: value})

        def land() -> None:
            effect()
            group._rs_work -= 1
            for key in pending or {}:
                where = _GROUP_PENDING if key in _GROUP_PENDING_KEYS else _MEMBER_PENDING
                values = {k: v for k, v in (getattr(group, where, None) or {}).items() if k != key}
                setattr(group, where, values or None)
            if group._rs_work == 0 and group.status == status:
                group.status = "available"

        current().after(duration, land)


class _MemberCluster:
    """A replication group's member as DescribeCacheClusters shows it on AWS."""

    def __init__(self, group: Any, cluster_id: str):
        self.cache_cluster_id = cluster_id
        self.replication_group_id = group.replication_group_id
        new = cluster_id in getattr(group, "_rs_new_members", ())
        self.cache_cluster_status = "creating" if new or group.status == "creating" else (
            "deleting" if group.status == "deleting" else "modifying" if group.status == "modifying" else "available")
        self.pending_modified_values = getattr(group, _MEMBER_PENDING, None) or None
        self.engine = group.engine
        self.engine_version = getattr(group, "engine_version", None) or "7.1.0"
        self.cache_node_type = group.cache_node_type
        self.num_cache_nodes = 1
        self.cache_subnet_group_name = group.cache_subnet_group_name
        self.security_groups = [{"SecurityGroupId": g, "Status": "active"} for g in group.security_group_ids or []]
        self.transit_encryption_enabled = group.transit_encryption_enabled
        self.auth_token_enabled = group.auth_token_enabled
        self.arn = group.arn.replace(":replicationgroup:", ":cluster:").rsplit(":", 1)[0] + f":{cluster_id}"


def _set_members(group: Any, count: int) -> list[str]:
    """Make the group's node group hold a primary and `count` replicas; returns the new member ids."""
    node_group = group.node_groups[0]
    primary = node_group["node_group_members"][0]
    before = set(group.member_clusters)
    members = [primary]
    for r in range(1, count + 1):
        member_id = f"{group.replication_group_id}-{r + 1:0>3}"
        members.append({**primary, "cache_cluster_id": member_id, "current_role": "replica",
                        "read_endpoint": {**primary["read_endpoint"],
                                          "address": primary["read_endpoint"]["address"].replace(
                                              primary["cache_cluster_id"], member_id)}})
    node_group["node_group_members"] = members
    group.member_clusters = [m["cache_cluster_id"] for m in members]
    return [m for m in group.member_clusters if m not in before]


def patch_moto_elasticache() -> None:
    """Install the fixes and rules above into moto's ElastiCache model (idempotent)."""
    from moto.elasticache import models, responses

    backend, answers = models.ElastiCacheBackend, responses.ElastiCacheResponse
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]

    _patch_create(backend)
    _patch_lifecycle(backend)
    _patch_modifications(answers)
    _patch_replicas(answers)
    _patch_tags(backend)
    _patch_subnet_groups(answers)


def _patch_create(backend: Any) -> None:
    """CreateReplicationGroup takes AWS's time and keeps AWS's rules (token, failover, Multi-AZ)."""
    create = backend.create_replication_group

    def create_takes_time(self: Any, **kwargs: Any) -> Any:
        clusters = kwargs.get("num_cache_clusters") or 1
        if kwargs.get("num_cache_clusters") and not kwargs.get("replicas_per_node_group"):
            kwargs["replicas_per_node_group"] = clusters - 1
        token = kwargs.get("auth_token")
        if token:
            if not kwargs.get("transit_encryption_enabled"):
                raise _error("InvalidParameterCombination", "Encryption in transit must be enabled for the "
                                                            "Replication Group when AuthToken is supplied.")
            check_token(token, at_create=True)
        if kwargs.get("automatic_failover_enabled") and clusters < 2 and not kwargs.get("num_node_groups"):
            raise _error("InvalidParameterValue", "NumCacheClusters must be at least 2 when automatic failover "
                                                  "is enabled.")
        if kwargs.get("multi_az_enabled") and clusters < 2 and not kwargs.get("num_node_groups"):
            raise _error("InvalidParameterCombination", "Multi-AZ needs at least one read replica "
                                                        "(NumCacheClusters of 2 or more).")
        group = create(self, **kwargs)
        group._rs_tokens = [token] if token else []
        group.pending_modified_values = None
        _Work.start(group, "creating", "elasticache.create", lambda: None)
        return group
    backend.create_replication_group = create_takes_time  # type: ignore[method-assign]


def _patch_lifecycle(backend: Any) -> None:
    """Member clusters described, deletes and snapshots that take AWS's time (a final snapshot first)."""
    describe = backend.describe_cache_clusters
    snapshot = backend.create_snapshot

    def describe_with_members(self: Any, cache_cluster_id: str | None = None) -> Any:
        members = [_MemberCluster(g, m) for g in self.replication_groups.values() for m in g.member_clusters]
        if cache_cluster_id:
            found = [m for m in members if m.cache_cluster_id == cache_cluster_id]
            return found or describe(self, cache_cluster_id)
        return describe(self) + members

    def delete_takes_time(self: Any, replication_group_id: str, retain_primary_cluster: bool | None,
                          final_snapshot: str | None = None) -> Any:
        from moto.elasticache.exceptions import ReplicationGroupNotFound

        group = self.replication_groups.get(replication_group_id)
        if group is None:
            raise ReplicationGroupNotFound(replication_group_id)
        _require_available(group)
        if final_snapshot:  # AWS: "the name of a final node group snapshot", taken before the group goes
            snapshot(self, final_snapshot, replication_group_id, cache_cluster_id=None, kms_key_id=None, tags=[])
        group.status = "deleting"

        def gone() -> None:
            if self.replication_groups.get(replication_group_id) is group:
                del self.replication_groups[replication_group_id]

        current().after("elasticache.delete", gone)
        return group

    def snapshot_takes_time(self: Any, snapshot_name: str, replication_group_id: str | None, **kwargs: Any) -> Any:
        group = self.replication_groups.get(replication_group_id or "")
        if group is not None:
            _require_available(group)
        made = snapshot(self, snapshot_name, replication_group_id, **kwargs)
        if group is not None:
            _Work.start(group, "snapshotting", "elasticache.snapshot", lambda: None)
        return made
    backend.describe_cache_clusters = describe_with_members  # type: ignore[method-assign]
    backend.delete_replication_group = delete_takes_time  # type: ignore[method-assign]
    backend.create_snapshot = snapshot_takes_time  # type: ignore[method-assign]


def _patch_modifications(answers: Any) -> None:
    """ModifyReplicationGroup and the replica counts, one modification at a time, each taking AWS's time."""
    def modify_takes_time(self: Any) -> Any:
        group = group_of(self)
        _require_available(group)
        node_type, version = self._get_param("CacheNodeType"), self._get_param("EngineVersion")
        sg_ids = self._get_param("SecurityGroupIds")
        failover = self._get_bool_param("AutomaticFailoverEnabled")
        multi_az = self._get_bool_param("MultiAZEnabled")
        token = self._get_param("AuthToken")
        strategy = self._get_param("AuthTokenUpdateStrategy") or ("ROTATE" if token is not None else None)
        if (failover or multi_az) and len(group.member_clusters) < 2:
            raise _error("InvalidParameterCombination", f"Replication group {group.replication_group_id} must have "
                                                        "at least one read replica to enable automatic failover "
                                                        "or Multi-AZ.")
        if token is not None:
            _check_token_change(group, token, strategy)
        if node_type and node_type != group.cache_node_type:
            _Work.start(group, "modifying", "elasticache.scale",
                        lambda: setattr(group, "cache_node_type", node_type), {"CacheNodeType": node_type})
        if version and version != getattr(group, "engine_version", None):
            _Work.start(group, "modifying", "elasticache.upgrade",
                        lambda: setattr(group, "engine_version", version), {"EngineVersion": version})
        if sg_ids:
            _Work.start(group, "modifying", "elasticache.settings",
                        lambda: setattr(group, "security_group_ids", sg_ids))
        if failover is not None and (failover != (group.automatic_failover == "enabled")):
            group.automatic_failover = "enabling" if failover else "disabling"
            _Work.start(group, "modifying", "elasticache.settings",
                        lambda: setattr(group, "automatic_failover", "enabled" if failover else "disabled"),
                        {"AutomaticFailoverStatus": "enabled" if failover else "disabled"})
            if not failover:
                group.multi_az = "disabled"
        if multi_az is not None:
            group.multi_az = "enabled" if multi_az else "disabled"
        if token is not None:
            _start_token_change(group, token, strategy)
        return ActionResult({"ReplicationGroup": group})
    answers.modify_replication_group = modify_takes_time  # type: ignore[method-assign]


def _patch_replicas(answers: Any) -> None:
    """Increase/DecreaseReplicaCount, each taking AWS's time; DeleteReplicationGroup with its final snapshot."""
    def set_replicas(self: Any) -> Any:
        group = group_of(self)
        _require_available(group)
        count = self._get_int_param("NewReplicaCount")
        if count < 1 and (group.automatic_failover in ("enabled", "enabling") or group.multi_az == "enabled"):
            raise _error("InvalidParameterValue", "The minimum number of replicas is 1 when automatic failover "
                                                  "(Multi-AZ) is enabled; disable automatic failover first.")
        current_count = len(group.member_clusters) - 1
        if count == current_count:
            raise _error("NoOperationFault", "The operation was not performed because no changes were required.")
        if count > current_count:
            new = _set_members(group, count)
            group._rs_new_members = set(new)
            _Work.start(group, "modifying", "elasticache.replicas",
                        lambda: setattr(group, "_rs_new_members", set()))
        else:
            _Work.start(group, "modifying", "elasticache.replicas", lambda: _set_members(group, count))
        return ActionResult({"ReplicationGroup": group})

    def delete_with_final_snapshot(self: Any) -> Any:
        group = self.elasticache_backend.delete_replication_group(
            self._get_param("ReplicationGroupId"), self._get_bool_param("RetainPrimaryCluster"),
            self._get_param("FinalSnapshotIdentifier"))
        return ActionResult({"ReplicationGroup": group})
    answers.delete_replication_group = delete_with_final_snapshot  # type: ignore[method-assign]
    answers.increase_replica_count = set_replicas  # type: ignore[attr-defined]
    answers.decrease_replica_count = set_replicas  # type: ignore[attr-defined]


def _patch_tags(backend: Any) -> None:
    """Tags changed only while the group is available; tagged resources typed as AWS types them."""
    add_tags, remove_tags = backend.add_tags_to_resource, backend.remove_tags_from_resource

    def group_by_arn(self: Any, arn: str) -> Any:
        return next((g for g in self.replication_groups.values() if g.arn == arn), None)

    def add_tags_when_available(self: Any, arn: str, tags: list[dict[str, str]]) -> None:
        group = group_by_arn(self, arn)
        if group is not None:
            _require_available(group)
        add_tags(self, arn, tags)

    def remove_tags_when_available(self: Any, arn: str, tags: list[str]) -> None:
        group = group_by_arn(self, arn)
        if group is not None:
            _require_available(group)
        remove_tags(self, arn, tags)

    tagged = backend.iter_tagged_resources

    def tagged_as_on_aws(self: Any) -> Any:
        from moto.core.resource_tagging import TaggedResource

        for resource in tagged(self):
            if resource.resource_type == "elasticache:replication-group":  # AWS: as in the ARN
                resource = TaggedResource(arn=resource.arn, tags=resource.tags,
                                          resource_type="elasticache:replicationgroup")
            yield resource

    backend.iter_tagged_resources = tagged_as_on_aws  # type: ignore[method-assign]
    backend.add_tags_to_resource = add_tags_when_available  # type: ignore[method-assign]
    backend.remove_tags_from_resource = remove_tags_when_available  # type: ignore[method-assign]


def _patch_subnet_groups(answers: Any) -> None:
    """DeleteCacheSubnetGroup (moto lacks it), refused while a cluster uses the group."""
    def delete_subnet_group(self: Any) -> Any:
        """DeleteCacheSubnetGroup (moto 5.2.5 lacks it); refused while a cluster uses the group."""
        from moto.elasticache.exceptions import CacheSubnetGroupNotFound

        name = self._get_param("CacheSubnetGroupName")
        backend = self.elasticache_backend
        if name not in backend.cache_subnet_groups:
            raise CacheSubnetGroupNotFound(name)
        if any(g.cache_subnet_group_name == name for g in backend.replication_groups.values()):
            raise _error("CacheSubnetGroupInUse", f"Cache subnet group {name} is currently in use by a cache "
                                                  "cluster.")
        del backend.cache_subnet_groups[name]
        return ActionResult({})
    answers.delete_cache_subnet_group = delete_subnet_group  # type: ignore[attr-defined]


def group_of(answer: Any) -> Any:
    """The replication group a request names (ReplicationGroupNotFound as AWS answers it)."""
    from moto.elasticache.exceptions import ReplicationGroupNotFound

    group_id = answer._get_param("ReplicationGroupId")
    group = answer.elasticache_backend.replication_groups.get(group_id)
    if group is None:
        raise ReplicationGroupNotFound(group_id)
    return group


def _check_token_change(group: Any, token: str, strategy: str) -> None:
    if not group.transit_encryption_enabled:
        raise _error("InvalidParameterCombination", "Encryption in transit must be enabled for the Replication "
                                                    "Group when AuthToken is supplied.")
    check_token(token)
    if strategy == "SET" and getattr(group, "_rs_rotated", None) != token:
        raise _error("InvalidParameterValue", "The AUTH token can be SET only after it was added with the ROTATE "
                                              "strategy and that rotation has completed.")


def _start_token_change(group: Any, token: str, strategy: str) -> None:
    def land() -> None:
        tokens = getattr(group, "_rs_tokens", [])
        group._rs_tokens = [token] if strategy == "SET" else [*tokens[-1:], token]
        group._rs_rotated = token if strategy == "ROTATE" else None  # "the last AUTH token rotated"
        group.auth_token_enabled = True
        group.auth_token_last_modified_date = datetime.now(UTC)

    _Work.start(group, "modifying", "elasticache.auth", land,
                {"AuthTokenStatus": "SETTING" if strategy == "SET" else "ROTATING"})


def valid_tokens(group: Any) -> list[str]:
    """The AUTH tokens a group accepts now (for tests of the rotation)."""
    return list(getattr(group, "_rs_tokens", []))
