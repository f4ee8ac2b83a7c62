"""A least-privilege IAM policy for exactly the calls the agent makes, from the registry.

Each kind lists its IAM actions next to its code (`Resource.iam_actions`); this module
joins them, so the policy cannot drift from the code. `iam_action()` maps an API operation
to the IAM action that authorises it where the two names differ (tests use it to prove
that every call the agent sends is covered).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws.trimmed import iam_action, iam_actions
from reconciler.kinds import registry
from reconciler.kinds.interfaces import IamScoped

if TYPE_CHECKING:
    from reconciler.spec.documents import Spec

# `run --watch-events`: the agent's own queue and rule (named after its lease), and the trail check.
EVENT_QUEUE_ACTIONS = ("sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes",
                       "sqs:TagQueue", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")
EVENT_RULE_ACTIONS = ("events:PutRule", "events:PutTargets", "events:DescribeRule", "events:TagResource")
TRAIL_ACTIONS = ("cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors")
# Who changed a drifted resource: CloudTrail's event history (LookupEvents takes no resource-level permission).
WHO_ACTIONS = ("cloudtrail:LookupEvents",)

# The calls of reconciler/lease.py, on the lease table only.
LEASE_ACTIONS = ("dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:TagResource", "dynamodb:GetItem",
                 "dynamodb:PutItem", "dynamodb:UpdateItem")


OWNED = {"StringEquals": {"aws:ResourceTag/managed-by": "reconciler"}}
CREATED_OWNED = {"StringEquals": {"aws:RequestTag/managed-by": "reconciler"}}
# Data and secrets are never readable on "*": every S3 call, secret and parameter reads, table items.
_SCOPED_SERVICES = ("s3", "secretsmanager", "ssm")
_DATA_READS = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan")

# Resources of a type, whatever their name: for the actions whose resources the agent cannot name ahead (random
# ids: distributions, Origin Access Controls, security groups) and for configuration reads. An action AWS
# authorises on a resource type is never granted on "*" (Service Authorization Reference: "If there is no value
# for this column, you must specify all resources"; otherwise an ARN of that type); the types are AWS's.
_ANY = {
    "Distributions": ["arn:aws:cloudfront::*:distribution/*"],
    "OriginAccessControls": ["arn:aws:cloudfront::*:origin-access-control/*"],
    "Tables": ["arn:aws:dynamodb:*:*:table/*"],
    "ReplicationGroups": ["arn:aws:elasticache:*:*:replicationgroup:*"],
    "CacheClusters": ["arn:aws:elasticache:*:*:cluster:*"],
    "SubnetGroups": ["arn:aws:elasticache:*:*:subnetgroup:*"],
    "Caches": ["arn:aws:elasticache:*:*:cluster:*", "arn:aws:elasticache:*:*:replicationgroup:*",
               "arn:aws:elasticache:*:*:subnetgroup:*"],
    "SecurityGroups": ["arn:aws:ec2:*:*:security-group/*"],
    # A security group is created in a VPC: CreateSecurityGroup is authorised on both (the request's tags are
    # evaluated on both: AWS lists aws:RequestTag for the vpc and the security-group types).
    "SecurityGroupsInVpcs": ["arn:aws:ec2:*:*:security-group/*", "arn:aws:ec2:*:*:vpc/*"],
    "Trails": ["arn:aws:cloudtrail:*:*:trail/*"],
}
_TYPE_OF = {
    **dict.fromkeys(("cloudfront:GetDistribution", "cloudfront:GetDistributionConfig",
                     "cloudfront:ListTagsForResource", "cloudfront:GetInvalidation", "cloudfront:ListInvalidations",
                     "cloudfront:CreateInvalidation", "cloudfront:UpdateDistribution",
                     "cloudfront:DeleteDistribution", "cloudfront:TagResource", "cloudfront:UntagResource"),
                    "Distributions"),
    **dict.fromkeys(("cloudfront:GetOriginAccessControl", "cloudfront:DeleteOriginAccessControl"),
                    "OriginAccessControls"),
    **dict.fromkeys(("dynamodb:DescribeTable", "dynamodb:ListTagsOfResource", "dynamodb:DescribeTimeToLive",
                     "dynamodb:DescribeContinuousBackups"), "Tables"),
    "elasticache:DescribeReplicationGroups": "ReplicationGroups",
    "elasticache:DescribeCacheClusters": "CacheClusters",
    "elasticache:DescribeCacheSubnetGroups": "SubnetGroups",
    "elasticache:ListTagsForResource": "Caches",
    **dict.fromkeys(("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
                     "ec2:DeleteSecurityGroup", "ec2:CreateTags"), "SecurityGroups"),
    "ec2:CreateSecurityGroup": "SecurityGroupsInVpcs",
    **dict.fromkeys(("cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"), "Trails"),
}


def is_metadata_read(action: str) -> bool:
    """A control-plane read (Describe*, List*, Get* of configuration): allowed on any resource."""
    service, operation = action.split(":", 1)
    return (service not in _SCOPED_SERVICES and action not in _DATA_READS
            and operation.startswith(("Describe", "List", "Get")))


def policy(lease_table: str = "reconciler-lease", specs: Sequence[Spec] | None = None,
           lease_name: str = "reconciler", watch_events: bool = False) -> dict[str, Any]:
    """Least privilege, per kind: configuration reads on any resource of their types; writes, data and secrets
    only on the ARNs of the specs' names (any name of the kind without specs), or, where names cannot be known,
    only on resources tagged as the agent's (creates: with that tag in the request). With specs, kinds none
    declares get nothing. `watch_events` adds the event queue, rule and trail check of `run --watch-events`."""
    statements: list[dict[str, Any]] = []
    for cls in registry.classes():
        if not issubclass(cls, IamScoped) or not cls.iam_actions:
            continue
        mine: list[Spec | None] = [None] if specs is None else [s for s in specs if s.kind == cls.kind]
        if not mine:
            continue
        statements += _kind_statements(cls, mine)
    from reconciler.engine.inventory import IAM_ACTIONS

    statements.append({"Sid": "Inventory", "Effect": "Allow", "Action": list(IAM_ACTIONS), "Resource": "*"})
    statements.append({"Sid": "AgentLease", "Effect": "Allow", "Action": sorted(LEASE_ACTIONS),
                       "Resource": f"arn:aws:dynamodb:*:*:table/{lease_table}"})
    if watch_events:
        events = f"{lease_name}-events"
        statements.append(_statement("AgentEventQueue", list(EVENT_QUEUE_ACTIONS), f"arn:aws:sqs:*:*:{events}"))
        statements.append(_statement("AgentEventRule", list(EVENT_RULE_ACTIONS),
                                     f"arn:aws:events:*:*:rule/{events}"))
        statements += _by_type("AgentTrailCheck", list(TRAIL_ACTIONS))
    statements += _by_type("AgentWhoChangedIt", list(WHO_ACTIONS))
    return {"Version": "2012-10-17", "Statement": statements}


def _kind_statements(cls: type[IamScoped], specs: list[Spec | None]) -> list[dict[str, Any]]:
    kind, actions = cls.kind, sorted(set(cls.iam_actions))
    special = set(cls.iam_tagged) | set(cls.iam_request_tagged) | set(cls.iam_unscoped)
    resources: dict[str, list[str]] = {}
    for spec in specs:
        for prefix, arns in cls.iam_resources(spec).items():
            resources.setdefault(prefix, [])
            resources[prefix] += [a for a in arns if a not in resources[prefix]]
    out = _by_type(f"Read{kind}", [a for a in actions if is_metadata_read(a)])
    for prefix in sorted({a.split(":", 1)[0] for a in actions}):
        scoped = [a for a in actions if a.startswith(prefix + ":") and not is_metadata_read(a) and a not in special]
        if scoped and resources.get(prefix):
            out.append(_statement(f"{kind}{prefix.title().replace('-', '')}Scoped", scoped, resources[prefix]))
    out += _by_type(f"{kind}OwnedByTag", list(cls.iam_tagged), OWNED)
    out += _by_type(f"{kind}CreateTagged", list(cls.iam_request_tagged), CREATED_OWNED)
    out += _by_type(f"{kind}Untaggable", list(cls.iam_unscoped))
    return out


def _by_type(sid: str, actions: list[str], condition: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Statements for `actions`: those AWS authorises on a resource type on any resource of that type (one
    statement per type, `sid` + the type), the others on "*"."""
    groups: dict[str, list[str]] = {}
    for action in actions:
        groups.setdefault(_TYPE_OF.get(action, ""), []).append(action)
    return [_statement(sid + type_, group, _arns(type_), condition) for type_, group in sorted(groups.items())]


def _arns(type_: str) -> str | list[str]:
    if not type_:
        return "*"
    return _ANY[type_][0] if len(_ANY[type_]) == 1 else _ANY[type_]


def _statement(sid: str, actions: list[str], resource: str | list[str],
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resource}
    if condition:
        out["Condition"] = condition
    return out


__all__ = ["agent_actions", "allowed_actions", "iam_action", "iam_actions", "policy", "read_only_policy"]

# What `plan` never does: hold the lease, receive AWS's change events, ask CloudTrail who changed something.
_AGENT_ONLY = ("AgentLease", "AgentEventQueue", "AgentEventRule", "AgentTrailCheck", "AgentWhoChangedIt")


def _agent_only(sid: str) -> bool:
    return sid.startswith(_AGENT_ONLY)


def is_read(action: str) -> bool:
    """An action that only reads (configuration or data): what a plan may do."""
    operation = action.split(":", 1)[1]
    return operation.startswith(("Describe", "List", "Get", "BatchGet", "Query", "Scan", "Lookup"))


def read_only_policy(document: dict[str, Any]) -> dict[str, Any]:
    """The part of an agent's policy that `plan` uses: its statements' reads, on the same resources and
    conditions; nothing that writes (a pull request's plan job runs with it)."""
    statements = []
    for statement in document["Statement"]:
        if _agent_only(statement["Sid"]):
            continue
        reads = [a for a in statement["Action"] if is_read(a)]
        if reads:
            statements.append({**statement, "Sid": statement["Sid"] + "Read" if len(reads) < len(statement["Action"])
                               else statement["Sid"], "Action": reads})
    return {"Version": document["Version"], "Statement": statements}


def agent_actions() -> set[str]:
    """Every IAM action the agent may use, whatever its specs (the daemon's trimmed models keep these)."""
    return allowed_actions(policy(watch_events=True)) | {"sts:GetCallerIdentity", "sts:AssumeRole"}  # environments


def allowed_actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] for a in s["Action"]}
