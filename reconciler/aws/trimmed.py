"""botocore's service models, trimmed to the operations the agent may call, for a long-running agent.

A boto3 client holds its service's whole model: EC2's alone is 3.6 MB of JSON and some 16 MiB in memory, of
which the agent uses eight operations. The daemon (`reconciler run`) gives its session models that keep only
the operations its IAM policy allows (`iam-policy`: every call the agent makes is one of them, which the suite
checks), with the shapes they reach, without documentation. They are written once per botocore version into
the state directory, by a helper process (loading the full models would hold their memory here), and put
first on botocore's search path. RECONCILER_FULL_MODELS=1 turns it off. bench/daemon_memory.py measures it.

The table of API operations whose IAM action has another name lives here too: the IAM policy (iam.py) and
this trimming read the same facts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# API operation -> IAM action, where AWS names them differently.
IAM_ACTIONS = {
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    # "To use this operation, you must have the s3:PutBucketPublicAccessBlock permission" (S3 API reference,
    # DeletePublicAccessBlock): there is no s3:DeleteBucketPublicAccessBlock action
    ("s3", "DeletePublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "DeleteBucketTagging"): "s3:PutBucketTagging",
    ("s3", "HeadObject"): "s3:GetObject",
    ("cloudfront", "CreateDistributionWithTags"): "cloudfront:CreateDistribution",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "AbortMultipartUpload"): "s3:AbortMultipartUpload",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}
# Operations AWS authorises with a second action as well (CloudFront API reference, CreateDistributionWithTags:
# the caller needs cloudfront:CreateDistribution and cloudfront:TagResource).
ALSO_NEEDS = {("cloudfront", "CreateDistributionWithTags"): ("cloudfront:TagResource",)}
# botocore's service name -> IAM's prefix, where they differ.
IAM_PREFIXES = {"resourcegroupstaggingapi": "tag", "tagging": "tag"}
SERVICE_OF_PREFIX = {"tag": "resourcegroupstaggingapi"}
FORMAT = 2  # of the trimmed models: a cache written by another way of trimming is not used
_EMPTIED = ("documentation", "documentationUrl", "deprecatedMessage")  # botocore reads some: kept, emptied


def iam_action(service: str, operation: str) -> str:
    """The IAM action that authorises an API operation (botocore's service and operation names)."""
    return IAM_ACTIONS.get((service, operation), f"{IAM_PREFIXES.get(service, service)}:{operation}")


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    """Every IAM action an API operation needs (most need one; a create with tags needs the tagging one too)."""
    return (iam_action(service, operation), *ALSO_NEEDS.get((service, operation), ()))


def trimmed(model: dict[str, Any], operations: Iterable[str]) -> dict[str, Any]:
    """`model` with only `operations` and the shapes they reach (inputs, outputs, errors), without docs."""
    shapes, keep = model["shapes"], [op for op in operations if op in model["operations"]]
    needed: set[str] = set()

    def reach(name: str) -> None:
        if name in needed:
            return
        needed.add(name)
        shape = shapes[name]
        for key in ("member", "key", "value"):
            if key in shape:
                reach(shape[key]["shape"])
        for member in shape.get("members", {}).values():
            reach(member["shape"])

    for op in keep:
        spec = model["operations"][op]
        for key in ("input", "output"):
            if key in spec:
                reach(spec[key]["shape"])
        for error in spec.get("errors", []):
            reach(error["shape"])
    return _undocumented({**model, "operations": {op: model["operations"][op] for op in keep},
                          "shapes": {name: shapes[name] for name in sorted(needed)}})


def _undocumented(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "" if k in _EMPTIED else _undocumented(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_undocumented(v) for v in value]
    return value


def write_trimmed(root: Path, actions: Iterable[str]) -> Path:
    """Write trimmed models for every service `actions` name (IAM actions) under root/<botocore version>;
    returns that directory. Loads the full models: run it in a helper process (`use_trimmed`)."""
    import botocore
    import botocore.loaders

    loader = botocore.loaders.Loader()
    target = root / f"{botocore.__version__}-{FORMAT}"
    wanted: dict[str, set[str]] = {}
    for action in actions:
        prefix, _, _name = action.partition(":")
        wanted.setdefault(SERVICE_OF_PREFIX.get(prefix, prefix), set()).add(action)
    for service, allowed in sorted(wanted.items()):
        try:
            version = loader.determine_latest_version(service, "service-2")
        except Exception:
            continue
        model = loader.load_service_model(service, "service-2", version)
        operations = [op for op in model["operations"] if iam_action(service, op) in allowed]
        folder = target / service / version
        folder.mkdir(parents=True, exist_ok=True)
        _replace(folder / "service-2.json", json.dumps(trimmed(model, operations)))
    _replace(target / "actions.json", json.dumps(sorted({a for s in wanted.values() for a in s})))
    return target


def _replace(path: Path, text: str) -> None:
    """Write `path` all at once, under a name of this process's: agents sharing a directory never see half a
    file, nor write into each other's."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def use_trimmed(session: Any, actions: Iterable[str], root: Path) -> Path | None:
    """Give a boto3 session trimmed models for `actions` (written by a helper process when missing or made for
    other actions) under `root`, or RECONCILER_MODELS_DIR; returns their directory, or None when it is turned
    off or could not be done (the full models are used then)."""
    if os.environ.get("RECONCILER_FULL_MODELS"):
        return None
    root = Path(os.environ.get("RECONCILER_MODELS_DIR") or root)
    import botocore

    actions = sorted(set(actions))
    target = root / f"{botocore.__version__}-{FORMAT}"
    try:
        recorded = json.loads((target / "actions.json").read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded != actions:
        done = subprocess.run([sys.executable, "-m", "reconciler.aws.trimmed", str(root)], input=json.dumps(actions),
                              text=True, capture_output=True, timeout=120)
        if done.returncode != 0:
            return None
    session._session.get_component("data_loader").search_paths.insert(0, str(target))
    return target


if __name__ == "__main__":
    write_trimmed(Path(sys.argv[1]), json.load(sys.stdin))
