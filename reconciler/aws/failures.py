"""AWS's errors in words: the code of a ClientError, a failure said with the resource and the call it came from,
whether it is AWS's (a traceback is only for our own bugs)."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from reconciler.aws.inflight import current_operation
from reconciler.core.errors import ReconcilerError


def _botocore() -> ModuleType | None:
    """botocore's exceptions, when botocore is loaded (else no exception can be one of them): a command that
    makes no AWS call never imports it."""
    return sys.modules.get("botocore.exceptions")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a failed call ('' when it is not one)."""
    botocore = _botocore()
    if botocore is not None and isinstance(exc, botocore.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(exc: BaseException) -> str:
    """A one-line account of an AWS failure that names the call; never a traceback."""
    if isinstance(exc, ReconcilerError):
        return str(exc)
    botocore = _botocore()
    if botocore is not None and isinstance(exc, botocore.ClientError):
        err = exc.response.get("Error", {})
        return f"{exc.operation_name} failed: {err.get('Code', 'Error')}: {err.get('Message', '')}"
    op = current_operation() or "AWS call"
    if botocore is not None and isinstance(exc, botocore.NoCredentialsError):
        return f"{op} failed: no AWS credentials found (configure them, or use --sandbox)"
    if botocore is not None and isinstance(exc, botocore.EndpointConnectionError | botocore.ConnectionError):
        return f"{op} failed: cannot reach the AWS endpoint: {exc}"
    if botocore is not None and isinstance(exc, botocore.BotoCoreError):
        return f"{op} failed: {exc}"
    return f"{op} failed: {type(exc).__name__}: {exc}"


def is_aws_failure(exc: BaseException) -> bool:
    """True for failures of AWS, the network or the user's input; False for a bug in reconciler."""
    botocore = _botocore()
    if isinstance(exc, ReconcilerError | TimeoutError | OSError):
        return True
    return botocore is not None and isinstance(exc, botocore.BotoCoreError | botocore.ClientError)


def wants_traceback(exc: BaseException) -> bool:
    """Log the traceback of a failure: only a bug in reconciler, and only with RECONCILER_DEBUG=1."""
    return bool(os.environ.get("RECONCILER_DEBUG")) and not is_aws_failure(exc)


def describe_failure(exc: BaseException, ref: str, doing: str) -> str:
    """One line for a failure while `doing` something to `ref`: the AWS call that failed, or, for a
    bug in reconciler, an internal error that says so (never blamed on the last AWS call)."""
    if is_aws_failure(exc):
        return describe_error(exc)
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return (f"internal error in reconciler while {doing} {ref} (not an AWS failure): {type(exc).__name__}: {exc}"
            f"{at}; please report it (RECONCILER_DEBUG=1 logs the traceback)")
