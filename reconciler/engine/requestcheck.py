"""The requests a spec's creation sends, checked against AWS's rules before any call: botocore's model of each call
(apimodel.py) and the rules AWS documents elsewhere (constraints.py: tags, bucket policies). `validate` (and every
load of the specs) says each problem at the spec field it comes from, in AWS's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints
from reconciler.core.types import Request

if TYPE_CHECKING:
    from reconciler.kinds.interfaces import Validated
    from reconciler.spec.problems import Path_

# Calls with a rule of AWS's beyond the model and the tags: (service, operation) -> the refusal, if any.
_RULES: dict[tuple[str, str], Callable[[dict[str, Any]], constraints.Refusal | None]] = {
    ("s3", "PutBucketPolicy"): lambda params: constraints.policy_refusal(params["Policy"]),
}


def request_problems(resource: Validated) -> list[tuple[Path_, str]]:
    """(field path, message) for each rule of AWS's that the resource's creation requests break."""
    problems: list[tuple[Path_, str]] = []
    try:
        requests = resource.requests()
    except Exception:  # a spec its own rules refuse may not even build them: those rules say what is wrong
        return problems
    for request in requests:
        problems += _refused(request)
    return problems


def _refused(request: Request) -> list[tuple[Path_, str]]:
    call = f"{_service_name(request.service)} {request.operation}"
    out: list[tuple[Path_, str]] = []
    if request.model:
        from reconciler.aws.apimodel import message, violations

        # the tag rules below say what is wrong with the tags, in the service's documented words
        found = violations(request.service, request.operation, request.params,
                           unchecked=("tags",) if request.tags is not None else ())
        if found:
            out.append((request.where, f"AWS refuses {call}: {message(found)} (botocore's model of the call)"))
    if request.tags is not None:
        out += [(("spec", "tags"), f"{refusal.said()} (the tags {call} writes, the agent's own among them)")
                for refusal in constraints.tag_refusals(request.service, request.tags, request.kept)]
    rule = _RULES.get((request.service, request.operation))
    refusal = rule(request.params) if rule else None
    if refusal:
        out.append((request.where, f"the document {call} sends: {refusal.said()}"))
    return out


def _service_name(service: str) -> str:
    return {"dynamodb": "DynamoDB", "s3": "S3", "cloudfront": "CloudFront", "elasticache": "ElastiCache",
            "ec2": "EC2"}.get(service, service)

