"""botocore's service models, trimmed to the operations the agent may call, for a long-running agent.

A boto3 client holds its service's whole model: EC2's alone is 3.6 MB of JSON and some 16 MiB in memory, of
which the agent uses eight operations. The daemon (`reconciler run`) gives its session models that keep only
the operations its IAM policy allows (`iam-policy`: every call the agent makes is one of them, which the suite
checks), with the shapes they reach, without documentation. They are written once per botocore version into
the state directory, by a helper process (loading the full models would hold their memory here), and put
first on botocore's search path. botocore's table of endpoints (endpoints.json: 1.3 MB, some 7 MiB per session in
memory) is cut the same way, to the services kept and those botocore's credential providers call, and given to
the session as its endpoint resolver: the same entries, so AWS is reached as with the whole table.
RECONCILER_FULL_MODELS=1 turns it off. bench/daemon_memory.py measures it.

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
FORMAT = 3  # of the trimmed models: a cache written by another way of trimming is not used
# Services botocore's credential providers create clients of (AssumeRole, web identity, SSO): their endpoints stay.
CREDENTIAL_SERVICES = ("sts", "sso", "portal.sso", "oidc", "sso-oidc")
ENDPOINTS = "endpoints-kept.json"  # not botocore's name: its loader must not take it for its own table
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


def kept_endpoints(table: dict[str, Any], services: Iterable[str]) -> dict[str, Any]:
    """botocore's endpoints table with every partition whole but only `services` (endpoint prefixes) in each."""
    keep = set(services)
    return {**table, "partitions": [{**partition, "services": {name: entry for name, entry in
                                                               partition["services"].items() if name in keep}}
                                    for partition in table["partitions"]]}


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
    prefixes = set(CREDENTIAL_SERVICES)
    for service, allowed in sorted(wanted.items()):
        try:
            version = loader.determine_latest_version(service, "service-2")
        except Exception:
            continue
        model = loader.load_service_model(service, "service-2", version)
        prefixes |= {service, model["metadata"].get("endpointPrefix", service)}
        operations = [op for op in model["operations"] if iam_action(service, op) in allowed]
        folder = target / service / version
        folder.mkdir(parents=True, exist_ok=True)
        _replace(folder / "service-2.json", json.dumps(trimmed(model, operations)))
    _replace(target / ENDPOINTS, json.dumps(kept_endpoints(loader.load_data("endpoints"), prefixes)))
    _replace(target / "actions.json", json.dumps(sorted({a for s in wanted.values() for a in s})))
    return target


def _replace(path: Path, text: str) -> None:
    """Write `path` all at once, under a name of this process's: agents sharing a directory never see half a
    file, nor write into each other's."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def kept_models(root: Path) -> Path | None:
    """The trimmed models already written under `root` (or RECONCILER_MODELS_DIR) for this botocore, if any."""
    import botocore

    target = Path(os.environ.get("RECONCILER_MODELS_DIR") or root) / f"{botocore.__version__}-{FORMAT}"
    return target if (target / "actions.json").is_file() else None


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
    loader = session._session.get_component("data_loader")
    loader.search_paths.insert(0, str(target))
    loader.file_loader = _plain_json_loader()
    _LOADERS.setdefault(str(target), loader)
    _use_kept_endpoints(session, target / ENDPOINTS)
    return target


_LOADERS: dict[str, Any] = {}  # kept models' directory -> the first session's loader that reads them


def session_loader(target: Path) -> Any | None:
    """The loader a session reads the kept models in `target` with (use_trimmed), if one does: the request checks
    (apimodel.py) read the same models through it, so each is held in memory once."""
    return _LOADERS.get(str(target))


def _plain_json_loader() -> Any:
    """botocore's JSON file loader, reading into plain dicts instead of OrderedDicts: the same order (a dict keeps
    it), two fifths less memory for the models and endpoint rules a client holds."""
    import botocore.loaders

    class PlainJSONFileLoader(botocore.loaders.JSONFileLoader):
        def load_file(self, file_path: str) -> Any:
            for ext, open_method in botocore.loaders._JSON_OPEN_METHODS.items():
                if os.path.isfile(file_path + ext):
                    with open_method(file_path + ext, "rb") as fp:
                        return json.loads(fp.read().decode("utf-8"))
            return None

    return PlainJSONFileLoader()


def _use_kept_endpoints(session: Any, path: Path) -> None:
    """The session resolves endpoints from the kept table. It is botocore's own data, cut: botocore is told so
    (uses_builtin_data), or it would treat it as a user's table and change how it picks endpoints."""
    from botocore.regions import EndpointResolver

    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # the whole table then
    session._session._internal_components.register_component(
        "endpoint_resolver", EndpointResolver(table, uses_builtin_data=True))


if __name__ == "__main__":
    write_trimmed(Path(sys.argv[1]), json.load(sys.stdin))
