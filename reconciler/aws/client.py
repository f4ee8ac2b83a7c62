"""boto3 access: one session, thread-safe cached clients, retry config, call counting."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import structlog

from reconciler.aws.failures import describe_error
from reconciler.aws.inflight import inflight
from reconciler.aws.ratelimit import DEFAULT_LIMITS, RateLimiter
from reconciler.core.errors import ReconcilerError

T = TypeVar("T")
log = structlog.get_logger()

# The error codes AWS services answer when they throttle (as botocore's standard retry reads them).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})


class Aws:
    """The AWS handle a cycle uses. Clients are shared across threads (botocore clients are
    thread-safe; sessions are not, so clients are created under a lock).

    Configuration follows the AWS CLI: credentials chain, AWS_REGION/AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, AWS_RETRY_MODE (default: standard),
    AWS_MAX_ATTEMPTS. Every request (retries included) first takes a token from its service's
    bucket in `limiter`; throttled answers are counted per service in `throttles`.
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        retry_mode: str | None = None,
        max_attempts: int | None = None,
        pool_size: int = 16,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        limiter: RateLimiter | None = None,
    ):
        # AWS_REGION is what the AWS SDKs and CLI read; botocore itself reads AWS_DEFAULT_REGION.
        region = region or os.environ.get("AWS_REGION") or None
        try:
            self.session = boto3.session.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound as exc:
            raise ReconcilerError(f"{exc} (check --profile / AWS_PROFILE and ~/.aws/config)") from None
        self._config = botocore.config.Config(
            retries={
                # standard, not adaptive: the agent's own per-service token buckets already pace every request
                # (ratelimit.py); adaptive mode adds a second client-side limiter that takes a lock on every
                # answer (4 % of a 1,000-table plan, bench/plan_scale.py)
                "mode": retry_mode or os.environ.get("AWS_RETRY_MODE") or "standard",
                "total_max_attempts": max_attempts or int(os.environ.get("AWS_MAX_ATTEMPTS") or 5),
            },
            max_pool_connections=pool_size,
            user_agent_extra=USER_AGENT,  # CloudTrail records it: AWS's change events of its own writes are known
            connect_timeout=connect_timeout or float(os.environ.get("RECONCILER_AWS_CONNECT_TIMEOUT") or 5),
            read_timeout=read_timeout or float(os.environ.get("RECONCILER_AWS_READ_TIMEOUT") or 30),
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()  # the cycle's (read them with call_counts())
        self.background_calls: Counter[tuple[str, str]] = Counter()  # made on a background thread
        self._cache: dict[str, _Once] = {}
        self._listed: Future[dict[str, dict[str, str]]] | None = None  # this cycle's bulk tag listing: ARN -> tags
        self._written: dict[str, float] = {}  # ref -> when the agent last wrote to it (monotonic)
        self.limiter = limiter or RateLimiter(dict(DEFAULT_LIMITS))
        self.throttles: Counter[str] = Counter()  # service -> throttled answers
        self.rate_limited: Counter[str] = Counter()  # service -> requests that waited for a token
        self.rate_limit_wait_s: Counter[str] = Counter()  # service -> seconds spent waiting

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def check_configured(self) -> None:
        """Fail early, in words, when no credentials or no region are configured."""
        if self.session.get_credentials() is None:
            raise ReconcilerError(
                "no AWS credentials found: configure them as for the AWS CLI (environment, "
                "~/.aws, instance role), or try it locally with --sandbox"
            )
        if not self.region:
            raise ReconcilerError(
                "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region), "
                "or try it locally with --sandbox"
            )

    def assume_role(self, role_arn: str, session_name: str, external_id: str | None = None,
                    duration_s: int | None = None) -> None:
        """From now on, act as `role_arn` (STS AssumeRole with the configured credentials). botocore refreshes
        the role's credentials before they expire (15 minutes ahead), for as long as the process runs."""
        from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

        core = self.session._session
        source = core.get_credentials()
        extra: dict[str, Any] = {"RoleSessionName": session_name}
        if external_id:
            extra["ExternalId"] = external_id
        if duration_s:
            extra["DurationSeconds"] = duration_s
        fetcher = AssumeRoleCredentialFetcher(client_creator=core.create_client, source_credentials=source,
                                              role_arn=role_arn, extra_args=extra)
        credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
        try:
            credentials.get_frozen_credentials()  # now, so that a refusal is said before anything else
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise ReconcilerError(f"cannot assume the role {role_arn} (sts:AssumeRole): {describe_error(exc)}") \
                from None
        core._credentials = credentials
        with self._lock:
            self._clients.clear()

    def identity(self) -> dict[str, str]:
        """Who the credentials are (STS GetCallerIdentity): Account, Arn, UserId."""
        try:
            answer = self.client("sts").get_caller_identity()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise ReconcilerError(f"cannot tell which account the credentials reach (sts:GetCallerIdentity): "
                                  f"{describe_error(exc)}") from None
        return {k: answer[k] for k in ("Account", "Arn", "UserId")}

    def client(self, service: str, region: str | None = None) -> Any:
        """The shared client for a service (created once, thread-safely); `region` for a global
        service's home Region (CloudFront's tags are listed in us-east-1)."""
        key = f"{service}@{region}" if region else service
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self.session.client(service, config=self._config, region_name=region or self.region)
                    client.meta.events.register("before-call", self._before_call)
                    client.meta.events.register("before-send", functools.partial(self._before_send, service))
                    client.meta.events.register("needs-retry", functools.partial(self._count_throttle, service))
                    if _CALL_LOG:
                        client.meta.events.register("provide-client-params",
                                                    functools.partial(_record_call, client.meta.region_name))
                    self._clients[key] = client
        return client

    def cached(self, key: str, load: Callable[[], T]) -> T:
        """Read once per cycle and share: one list call serves every resource that needs it.

        Concurrent callers of the same key wait for the one load; a failed load is not cached.
        """
        with self._lock:
            once = self._cache.setdefault(key, _Once())
        return once.get(load)

    def new_cycle(self) -> None:
        """Forget the reads shared during the last cycle."""
        with self._lock:
            self._cache.clear()
            self._listed = None

    def use_tag_listing(self, listing: Future[dict[str, dict[str, str]]]) -> None:
        """Serve this cycle's tag reads from one bulk listing (the Tagging API's GetResources), being read
        alongside the other reads: a reader that needs it waits for it; a failed listing serves nothing."""
        self._listed = listing

    def _listing(self) -> dict[str, dict[str, str]] | None:
        future = self._listed
        if future is None:
            return None
        try:
            return future.result()
        except Exception:
            return None  # reported by the planner; the tags are read one by one

    def listed_tags(self, ref: str, arn: str) -> dict[str, str] | None:
        """The tags of `arn` from this cycle's bulk listing; None = read them directly: there is no
        listing (a single resource's reconcile), it does not cover `arn`, or the agent wrote to `ref`
        within RECENT_WRITE_S (the listing may not show a write that recent yet)."""
        listing = self._listing()
        if listing is None or arn not in listing:
            return None
        written = self._written.get(ref)
        if written is not None and time.monotonic() - written < RECENT_WRITE_S:
            return None
        return dict(listing[arn])

    def listed_arns(self) -> list[str] | None:
        """Every ARN of this cycle's bulk listing (None when there is none)."""
        listing = self._listing()
        return None if listing is None else list(listing)

    def wrote(self, ref: str) -> None:
        """The agent has just written to resource `ref`: read its tags directly for a while."""
        with self._lock:
            self._written[ref] = time.monotonic()

    def _before_call(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        inflight.operation = f"{model.service_model.service_id}.{model.name}"
        with self._lock:
            if inflight.background:  # the lease's heartbeat: not the cycle's calls
                self.background_calls[(service, model.name)] += 1
            else:
                self.calls[(service, model.name)] += 1

    def _before_send(self, service: str, **_: Any) -> None:
        waited = self.limiter.acquire(service)
        if waited:
            with self._lock:
                self.rate_limited[service] += 1
                self.rate_limit_wait_s[service] += waited

    def _count_throttle(self, service: str, response: Any = None, attempts: int = 0, **kwargs: Any) -> None:
        if response is None:
            return
        http_response, parsed = response
        code = (parsed or {}).get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES or http_response.status_code == 429:
            with self._lock:
                self.throttles[service] += 1
            log.debug("aws.throttled", service=service, operation=kwargs["operation"].name, code=code,
                      attempt=attempts)

    def take_limit_counts(self) -> dict[str, Counter[str]]:
        """Throttled answers, rate-limited requests and seconds waited per service since the last
        call (the agent adds them to its metrics)."""
        with self._lock:
            taken = {"throttles": self.throttles, "rate_limited": self.rate_limited,
                     "rate_limit_wait_s": self.rate_limit_wait_s}
            self.throttles, self.rate_limited, self.rate_limit_wait_s = Counter(), Counter(), Counter()
        return taken

    def call_counts(self) -> Counter[tuple[str, str]]:
        """A copy of the cycle's API calls so far, taken under the lock (other threads add to them)."""
        with self._lock:
            return Counter(self.calls)

    def take_background_counts(self) -> Counter[tuple[str, str]]:
        """The calls made on background threads since the last take (for the metrics)."""
        with self._lock:
            taken, self.background_calls = self.background_calls, Counter()
        return taken

    def reset_counts(self) -> Counter[tuple[str, str]]:
        """Return the API calls counted so far and start a new count (one per cycle)."""
        with self._lock:
            calls, self.calls = self.calls, Counter()
        return calls


class _Once:
    """A value computed once, by whichever thread asks first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None

    def get(self, load: Callable[[], T]) -> T:
        with self._lock:
            if not self._done:
                self._value = load()
                self._done = True
            return self._value  # type: ignore[no-any-return]


_CALL_LOG = os.environ.get("RECONCILER_CALL_LOG")
_logged: set[str] = set()
_log_lock = threading.Lock()
_SECRET_WORDS = ("token", "secret", "password")


def _record_call(region: str, params: dict[str, Any], model: Any, **_: Any) -> None:
    """With RECONCILER_CALL_LOG=FILE, append each distinct call this process makes as a JSON line: botocore's
    service and operation names, the client's Region and the call's parameters (secrets and bodies left out).
    The tests evaluate each against the IAM policy with the resource it touched."""
    entry = json.dumps({"service": model.service_model.service_name, "operation": model.name, "region": region,
                        "params": _loggable(params)}, sort_keys=True, default=str)
    with _log_lock:
        if entry in _logged:
            return
        _logged.add(entry)
        with open(_CALL_LOG, "a", encoding="utf-8") as log_file:  # type: ignore[arg-type]
            log_file.write(entry + "\n")


def _loggable(value: Any, key: str = "") -> Any:
    if any(word in key.lower() for word in _SECRET_WORDS):
        return "<redacted>"
    if key == "Body" or isinstance(value, bytes | bytearray):
        return "<body>"
    if isinstance(value, dict):
        return {k: _loggable(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_loggable(v) for v in value]
    return value


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("reconciler")
    except Exception:
        return "dev"


USER_AGENT = f"reconciler/{_version()}"
RECENT_WRITE_S = 600.0  # how long after its own write the agent reads a resource's tags directly




