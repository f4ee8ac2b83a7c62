"""The AUTH token: AWS's rule for a token (16 to 128 characters of a few kinds), the salted fingerprint that tells
a changed token apart without revealing it, and where an interrupted rotation (ROTATE, then SET) stands."""

from __future__ import annotations

import hashlib
import hmac
import os
import string
import time
from typing import TYPE_CHECKING, Any

from reconciler.aws.secrets import resolve
from reconciler.core.types import Live, Step
from reconciler.kinds.cache.calls import update_tags

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.cache.protocol import Cluster

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


FINGERPRINT_TAG = "reconciler:auth-fingerprint"  # the token that is SET (the only one accepted)


ROTATION_TAG = "reconciler:auth-rotation"        # <fingerprint>:<rotate|set>:<epoch> while rotating


TOKEN_SPECIALS = "!&#$^<>-"


TOKEN_ALLOWED = frozenset(string.ascii_letters + string.digits + TOKEN_SPECIALS)


TOKEN_RULE = ("AWS takes an AUTH token of 16 to 128 characters: letters, digits and only the special characters "
              "!, &, #, $, ^, <, >, - (ElastiCache API Reference, CreateReplicationGroup, AuthToken: \"The only "
              "permitted printable special characters are !, &, #, $, ^, <, >, and -\")")


def token_problem(token: str) -> str | None:
    """Why AWS would refuse this AUTH token (without showing it), or None."""
    if not 16 <= len(token) <= 128:
        return f"the token has {len(token)} characters; {TOKEN_RULE}"
    refused = sorted(set(token) - TOKEN_ALLOWED)
    if refused:
        shown = " ".join(repr(c) if c.isascii() and c.isprintable() and not c.isspace() else f"U+{ord(c):04X}"
                         for c in refused)
        return f"the token contains {shown}; {TOKEN_RULE}"
    return None


_FINGERPRINTS: dict[bytes, str] = {}  # a keyed digest of (salt, token) -> its fingerprint; never the token
_FINGERPRINT_KEY = os.urandom(32)     # this process's: the digests mean nothing outside it
MAX_FINGERPRINTS = 64


def fingerprint(token: str, salt: str) -> str:
    """A slow, salted hash: tells a changed token apart without revealing it. Computed once per token and salt
    (scrypt costs ~40 ms and 16 MiB each time): kept by a keyed digest of them, never by the token."""
    key = hmac.new(_FINGERPRINT_KEY, salt.encode() + b"\0" + token.encode(), hashlib.sha256).digest()
    found = _FINGERPRINTS.get(key)
    if found is None:
        found = hashlib.scrypt(token.encode(), salt=salt.encode(), n=2**14, r=8, p=1, dklen=12).hex()
        if len(_FINGERPRINTS) >= MAX_FINGERPRINTS:
            _FINGERPRINTS.clear()
        _FINGERPRINTS[key] = found
    return found


def rotation(live: Live, want: str) -> tuple[str | None, bool]:
    """The AUTH token rotation the tags record for token `want`: its phase (rotate | set | None) and
    whether AWS has carried it out: AuthTokenLastModifiedDate after the phase was recorded (the tag is written
    just before the call, in milliseconds: a ROTATE that landed within the second the SET was recorded in
    must not pass for the SET)."""
    fingerprint, _, rest = live.tags.get(ROTATION_TAG, "").partition(":")
    phase, _, sent = rest.partition(":")
    try:
        sent_at = float(sent)
    except ValueError:
        return None, False
    if fingerprint != want or phase not in ("rotate", "set"):
        return None, False
    modified = live.extra.get("tokenModified")
    return phase, modified is not None and modified > sent_at and not live.extra.get("tokenChanging")


def token_settled(cluster: Cluster, tags: dict[str, str]) -> bool:
    """Listed tags may serve only when they show no token work: no rotation under way, and the token
    the spec references already recorded (else they are read directly: the rotation's steps go by them)."""
    return ROTATION_TAG not in tags and tags.get(FINGERPRINT_TAG) == cluster.wanted.get("authToken")


def live_token(cluster: Cluster, group: dict[str, Any], tags: dict[str, str]) -> str | None:
    """The live token's fingerprint. A cluster built by hand has a token but no fingerprint:
    the referenced token is taken to be it (the health check proves it) and recorded."""
    if not group.get("AuthTokenEnabled"):
        return None
    return tags.get(FINGERPRINT_TAG) or cluster.wanted.get("authToken")


def token_steps(cluster: Cluster, aws: Aws, live: Live, busy: str | None) -> list[Step]:
    """ROTATE (both tokens valid), then, once that has landed, SET (only the new one), then record
    the new token's fingerprint. Each phase is written to a tag before its call, and AWS's
    AuthTokenLastModifiedDate tells whether it has landed, so an interrupted rotation resumes."""
    ec = lambda: aws.client("elasticache")  # noqa: E731
    want = cluster.wanted["authToken"]
    phase, landed = rotation(live, want)

    def call(strategy: str) -> Step:
        def run() -> None:
            token = resolve(cluster.spec.spec["authToken"], aws).reveal()
            ec().add_tags_to_resource(ResourceName=live.id, Tags=[
                {"Key": ROTATION_TAG, "Value": f"{want}:{strategy.lower()}:{time.time():.3f}"}])
            ec().modify_replication_group(ReplicationGroupId=cluster.name, ApplyImmediately=True, AuthToken=token,
                                          AuthTokenUpdateStrategy=strategy)

        meaning = ("the new token is accepted beside the old one" if strategy == "ROTATE"
                   else "only the new token is accepted from then on")
        return Step(f"ModifyReplicationGroup: AUTH token {strategy} ({meaning})", run, settles=True, wait=busy,
                    takes="elasticache.auth")

    record = Step("record the new token's fingerprint (tags)", lambda: update_tags(
        ec(), live.id, {FINGERPRINT_TAG: want}, [ROTATION_TAG]), wait=busy)
    if phase == "set" and landed:
        return [record]
    if (phase == "rotate" and landed) or phase == "set":
        return [call("SET"), record]
    return [call("ROTATE"), call("SET"), record]
