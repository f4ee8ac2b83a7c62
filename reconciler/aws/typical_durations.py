"""How long AWS typically takes for each kind of work it does asynchronously, and where each figure comes
from. One table for two readers: the sandbox keeps AWS's time by it (scaled), and the agent uses it as its
prior for how long a pending operation should take until it has observed a few of its own
(aws/expected_durations.py).
docs/sandbox.md's table says the same (tests/unit/test_docs.py checks it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TypicalDuration:
    """How long AWS typically takes for one kind of work, and where that figure comes from."""

    seconds: float
    what: str
    source: str


# AWS's typical durations. Where AWS documents a figure it is cited; elsewhere the figure is a
# typical observed one, said so. docs/sandbox.md's table says the same (tests/unit/test_docs.py checks it).
TYPICAL_DURATIONS: dict[str, TypicalDuration] = {
    "dynamodb.create": TypicalDuration(20, "CreateTable: CREATING -> ACTIVE",
                                "typical for an empty table (not documented)"),
    "dynamodb.billing": TypicalDuration(180, "billing mode switch: UPDATING",
                                 "DynamoDB Developer Guide, 'Considerations when switching capacity modes': "
                                 "'can take several minutes'"),
    "dynamodb.throughput": TypicalDuration(60, "provisioned throughput change: UPDATING",
                                    "typical (not documented)"),
    "dynamodb.index_create": TypicalDuration(300, "GSI CREATING (Backfilling) -> ACTIVE",
                                      "Developer Guide, 'Adding a global secondary index to an existing table': "
                                      "backfilling time depends on the table's size; typical for a small table"),
    "dynamodb.index_delete": TypicalDuration(60, "GSI DELETING -> gone", "typical (not documented)"),
    "dynamodb.delete": TypicalDuration(20, "DeleteTable: DELETING -> gone", "typical (not documented)"),
    "dynamodb.ttl": TypicalDuration(300, "UpdateTimeToLive: TTL ENABLING/DISABLING -> ENABLED/DISABLED",
                             "API Reference, UpdateTimeToLive: 'can take up to one hour'; the status usually "
                             "settles sooner (typical, not documented), while the hour below still holds"),
    "dynamodb.ttl_lock": TypicalDuration(3600, "after an UpdateTimeToLive: no other UpdateTimeToLive on that table",
                                  "API Reference, UpdateTimeToLive: 'Any additional UpdateTimeToLive calls for "
                                  "the same table during this one hour duration result in a ValidationException'"),
    "dynamodb.backups": TypicalDuration(10, "after CREATING -> ACTIVE: continuous backups become available",
                                 "observed, not documented: scalar-labs/scalardb#347, aws-amplify/amplify-backend"
                                 "#1654 ('Backups are being enabled for the table')"),
    "elasticache.create": TypicalDuration(600, "CreateReplicationGroup: creating -> available",
                                   "ElastiCache User Guide, 'Creating a cluster': typically ~10 minutes"),
    "elasticache.scale": TypicalDuration(1200, "node type change: modifying",
                                  "ElastiCache User Guide, 'Scaling node-based clusters': online scaling takes "
                                  "tens of minutes (not a fixed figure)"),
    "elasticache.upgrade": TypicalDuration(900, "engine version upgrade: modifying", "typical (not documented)"),
    "elasticache.replicas": TypicalDuration(600, "Increase/DecreaseReplicaCount: modifying, new members creating",
                                     "typical: a new node takes as long as a create"),
    "elasticache.settings": TypicalDuration(120, "security groups, automatic failover: modifying",
                                     "typical (not documented)"),
    "elasticache.auth": TypicalDuration(180, "AUTH token ROTATE/SET: modifying",
                                 "typical (not documented)"),
    "elasticache.snapshot": TypicalDuration(300, "CreateSnapshot: snapshotting", "typical for a small dataset"),
    "elasticache.delete": TypicalDuration(300, "DeleteReplicationGroup (final snapshot): deleting -> gone",
                                   "typical (not documented)"),
    "cloudfront.deploy": TypicalDuration(300, "Create/UpdateDistribution: InProgress -> Deployed",
                                  "CloudFront Developer Guide, 'Update a distribution': deploying to all edge "
                                  "locations takes minutes"),
    "cloudfront.invalidation": TypicalDuration(120, "CreateInvalidation: InProgress -> Completed",
                                        "typical (not documented)"),
}

__all__ = ["TYPICAL_DURATIONS", "TypicalDuration"]
