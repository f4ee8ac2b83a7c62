"""Where the agent's AWS calls go: the endpoints configured (AWS_ENDPOINT_URL and its per-service forms), whether
one is the local sandbox (it says so itself, at GET /_sandbox/time, on a loopback address), and the sandbox's AWS
time (how much faster than AWS it works), by which waits and polls are scaled."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

import functools
import json
import os
import time

SANDBOX_MARK = "reconciler-sandbox"  # what the sandbox's GET /_sandbox/time says it is (sandbox/server.py)


def is_loopback(host: str | None) -> bool:
    """`host` (an address or a name) is reachable from this machine only."""
    import ipaddress

    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.cache
def is_sandbox_endpoint(url: str) -> bool:
    """True when `url` is a reconciler sandbox: a loopback address whose GET /_sandbox/time answers as the
    sandbox does (its own answer, never a variable). Asked once per endpoint and process."""
    import urllib.error
    import urllib.parse
    import urllib.request

    if not is_loopback(urllib.parse.urlparse(url).hostname):
        return False
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_sandbox/time", timeout=2) as answer:
            said = json.load(answer)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return isinstance(said, dict) and said.get("sandbox") == SANDBOX_MARK and "factor" in said


def configured_endpoints() -> list[str]:
    """The endpoints boto3 is pointed at by the environment (AWS_ENDPOINT_URL and every AWS_ENDPOINT_URL_<SERVICE>);
    empty when some service would reach AWS's own endpoint (no global override, or the configured endpoints
    ignored: AWS_IGNORE_CONFIGURED_ENDPOINT_URLS)."""
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return []
    url = os.environ.get("AWS_ENDPOINT_URL") or ""
    if not url:
        return []
    return [url, *(v for k, v in sorted(os.environ.items()) if k.startswith("AWS_ENDPOINT_URL_") and v)]


_factor_cache: dict[str, tuple[float, float]] = {}  # endpoint -> (read at, factor)


def talks_to_sandbox(aws: Aws | None = None, service: str | None = None) -> bool:
    """True when AWS here is a reconciler sandbox, recognised by where it is: with `aws` and `service`, the
    endpoint that service's client really calls; else every endpoint the environment points boto3 at. Each must
    be on loopback and answer as the sandbox itself (is_sandbox_endpoint). A variable alone (RECONCILER_SANDBOX,
    say) changes nothing, so nothing meant for the sandbox (a throw-away secret) ever reaches an account."""
    if aws is not None and service is not None:
        urls = [str(aws.client(service).meta.endpoint_url or "")]
    else:
        urls = configured_endpoints()
    return bool(urls) and all(u and is_sandbox_endpoint(u) for u in urls)


def aws_time_factor() -> float:
    """How AWS's time runs here relative to a real account's: 1.0 on AWS; against the sandbox, its factor
    (`--aws-time`: 0.01 makes an hour 36 s). Rules the agent keeps by the clock (one TTL change per table per
    hour) are measured in it, so the agent waits exactly as long as the AWS it talks to makes it wait."""
    import json
    import urllib.error
    import urllib.request

    url = os.environ.get("AWS_ENDPOINT_URL") or ""
    if not url or not talks_to_sandbox():
        return 1.0
    now = time.monotonic()
    cached = _factor_cache.get(url)
    if cached and now - cached[0] < 2:
        return cached[1]
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_sandbox/time", timeout=2) as answer:
            factor = float(json.load(answer)["factor"])
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        factor = cached[1] if cached else 1.0
    _factor_cache[url] = (now, factor)
    return factor


def aws_seconds(seconds: float) -> float:
    """`seconds` of a real account's time, as they pass against the AWS this process talks to."""
    return seconds * aws_time_factor()
