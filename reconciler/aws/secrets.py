"""Secrets by reference (fromEnv, fromSecretsManager, fromSsmParameter), never literals.

A resolved value is wrapped in `Secret`, whose repr and str never show it, so it cannot
leak into a log line, a plan or a status document by accident.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from reconciler.core.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.aws.client import Aws


class Secret:
    """A secret value; printing it shows `(sensitive)`."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('(sensitive)')"

    def __str__(self) -> str:
        return "(sensitive)"


_warned: set[str] = set()


def _throw_away(variable: str) -> str:
    """A stand-in for an unset variable, against the sandbox only: the same in every process (so a
    fingerprint stays equal), valid as an AUTH token, and said once per process."""
    import hashlib

    import structlog

    if variable not in _warned:
        _warned.add(variable)
        structlog.get_logger().warning("secret.throw_away", variable=variable,
                                       reason="not set; the sandbox gets a throw-away value (never a real account)")
    return "sandbox-" + hashlib.sha256(f"reconciler-sandbox:{variable}".encode()).hexdigest()[:24]


def describe_ref(ref: dict[str, str]) -> str:
    """`fromEnv REDIS_AUTH_TOKEN`: how messages name a secret without showing it."""
    [(kind, where)] = ref.items()
    return f"{kind} {where}"


def resolve(ref: dict[str, Any], aws: Aws | None) -> Secret:
    """Fetch a secret from where its reference points."""
    [(kind, where)] = ref.items()
    if kind == "fromEnv":
        value = os.environ.get(where)
        if value is None:
            from reconciler.aws.endpoints import talks_to_sandbox

            # the token goes to ElastiCache: a throw-away value only when that client's endpoint is the sandbox
            if not talks_to_sandbox(aws, "elasticache" if aws is not None else None):
                raise ReconcilerError(f"the environment variable {where} is not set (authToken: fromEnv {where})")
            value = _throw_away(where)
        return Secret(value)
    if aws is None:
        raise ReconcilerError(f"{describe_ref(ref)} needs AWS access")
    if kind == "fromSecretsManager":
        answer = aws.client("secretsmanager").get_secret_value(SecretId=where)
        return Secret(answer.get("SecretString") or answer["SecretBinary"].decode())
    if kind == "fromSsmParameter":
        answer = aws.client("ssm").get_parameter(Name=where, WithDecryption=True)
        return Secret(answer["Parameter"]["Value"])
    raise ReconcilerError(f"unknown secret reference {kind!r}")
