"""The steps of a change to a cache, one modification AWS accepts at a time: replicas (automatic failover off
before the last goes, on after the first comes), node type, engine version, security groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.core.types import Live, Step

if TYPE_CHECKING:
    from reconciler.kinds.cache.protocol import Cluster


def modify(cluster: Cluster, ec: Any, what: str, busy: str | None, takes: str = "elasticache.settings",
           **args: Any) -> Step:
    return Step(f"ModifyReplicationGroup: {what}", lambda: ec().modify_replication_group(
        ReplicationGroupId=cluster.name, ApplyImmediately=True, **args), settles=True, wait=busy, takes=takes)


def replica_steps(cluster: Cluster, ec: Any, live: Live, want: dict[str, Any], fields: set[str], busy: str | None,
                   down: bool) -> list[Step]:
    """Fewer replicas (automatic failover off first when none remain) or more replicas (failover on
    after): AWS keeps automatic failover only with at least one replica."""
    have, count = live.state["replicas"], want["replicas"]
    failover_on = live.state["automaticFailover"]
    steps: list[Step] = []
    if down:
        if "replicas" in fields and count < have:
            if count == 0 and failover_on:
                steps.append(modify(cluster, ec, "automatic failover off (AWS needs that before the last replica "
                                              "goes)", busy, AutomaticFailoverEnabled=False, MultiAZEnabled=False))
            steps.append(Step(f"DecreaseReplicaCount: {have} -> {count}", lambda: ec().decrease_replica_count(
                ReplicationGroupId=cluster.name, NewReplicaCount=count, ApplyImmediately=True),
                settles=True, wait=busy, takes="elasticache.replicas"))
        return steps
    if "replicas" in fields and count > have:
        steps.append(Step(f"IncreaseReplicaCount: {have} -> {count}", lambda: ec().increase_replica_count(
            ReplicationGroupId=cluster.name, NewReplicaCount=count, ApplyImmediately=True), settles=True, wait=busy,
            takes="elasticache.replicas"))
    elif "automaticFailover" in fields and not want["automaticFailover"] and failover_on and count >= have:
        steps.append(modify(cluster, ec, "automatic failover off", busy, AutomaticFailoverEnabled=False,
                                  MultiAZEnabled=False))
    if want["automaticFailover"] and not failover_on and fields & {"replicas", "automaticFailover"}:
        steps.append(modify(cluster, ec, "automatic failover on", busy, AutomaticFailoverEnabled=True))
    return steps
