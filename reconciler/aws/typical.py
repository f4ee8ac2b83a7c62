"""How long AWS typically takes for each kind of work it does asynchronously, and where each figure comes
from. One table for two readers: the sandbox keeps AWS's time by it (scaled), and the agent uses it as its
prior for how long a pending operation should take until it has observed a few of its own (agent/expect.py).
docs/sandbox.md's table says the same (tests/unit/test_docs.py checks it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Duration:
    """How long AWS typically takes for one kind of work, and where that figure comes from."""

    seconds: float
    what: str
    source: str


# AWS's typical durations. Where AWS documents a figure it is cited; elsewhere the figure is a
# typical observed one, said so. docs/sandbox.md's table says the same (tests/unit/test_docs.py checks it).
DURATIONS: dict[str, Duration] = {
    "dynamodb.create": Duration(20, "CreateTable: CREATING -> ACTIVE",
                                "typical for an empty table (not documented)"),
    "dynamodb.billing": Duration(180, "billing mode switch: UPDATING",
                                 "DynamoDB Developer Guide, 'Considerations when switching capacity modes': "
                                 "'can take several minutes'"),
    "dynamodb.throughput": Duration(60, "provisioned throughput change: UPDATING",
                                    "typical (not documented)"),
    "dynamodb.index_create": Duration(300, "GSI CREATING (Backfilling) -> ACTIVE",
                                      "Developer Guide, 'Adding a global secondary index to an existing table': "
                                      "backfilling time depends on the table's size; typical for a small table"),
    "dynamodb.index_delete": Duration(60, "GSI DELETING -> gone", "typical (not documented)"),
    "dynamodb.delete": Duration(20, "DeleteTable: DELETING -> gone", "typical (not documented)"),
    "dynamodb.ttl": Duration(300, "UpdateTimeToLive: TTL ENABLING/DISABLING -> ENABLED/DISABLED",
                             "API Reference, UpdateTimeToLive: 'can take up to one hour'; the status usually "
                             "settles sooner (typical, not documented), while the hour below still holds"),
    "dynamodb.ttl_lock": Duration(3600, "after an UpdateTimeToLive: no other UpdateTimeToLive on that table",
                                  "API Reference, UpdateTimeToLive: 'Any additional UpdateTimeToLive calls for "
                                  "the same table during this one hour duration result in a ValidationException'"),
    "dynamodb.backups": Duration(10, "after CREATING -> ACTIVE: continuous backups become available",
                                 "observed, not documented: scalar-labs/scalardb#347, aws-amplify/amplify-backend"
                                 "#1654 ('Backups are being enabled for the table')"),
    "elasticache.create": Duration(600, "CreateReplicationGroup: creating -> available",
                                   "ElastiCache User Guide, 'Creating a cluster': typically ~10 minutes"),
    "elasticache.scale": Duration(1200, "node type change: modifying",
                                  "ElastiCache User Guide, 'Scaling node-based clusters': online scaling takes "
                                  "tens of minutes (not a fixed figure)"),
    "elasticache.upgrade": Duration(900, "engine version upgrade: modifying", "typical (not documented)"),
    "elasticache.replicas": Duration(600, "Increase/DecreaseReplicaCount: modifying, new members creating",
                                     "typical: a new node takes as long as a create"),
    "elasticache.settings": Duration(120, "security groups, automatic failover: modifying",
                                     "typical (not documented)"),
    "elasticache.auth": Duration(180, "AUTH token ROTATE/SET: modifying",
                                 "typical (not documented)"),
    "elasticache.snapshot": Duration(300, "CreateSnapshot: snapshotting", "typical for a small dataset"),
    "elasticache.delete": Duration(300, "DeleteReplicationGroup (final snapshot): deleting -> gone",
                                   "typical (not documented)"),
    "cloudfront.deploy": Duration(300, "Create/UpdateDistribution: InProgress -> Deployed",
                                  "CloudFront Developer Guide, 'Update a distribution': deploying to all edge "
                                  "locations takes minutes"),
    "cloudfront.invalidation": Duration(120, "CreateInvalidation: InProgress -> Completed",
                                        "typical (not documented)"),
}

__all__ = ["DURATIONS", "Duration"]
