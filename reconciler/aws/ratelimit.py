"""Client-side rate limiting: one token bucket per AWS service, in front of every request.

The defaults stay well under AWS's documented control-plane limits (DynamoDB: 2,500 control-plane
requests/s per account and Region; EC2 API: non-mutating calls refill 20/s; SSM GetParameter: 40/s)
and are conservative where AWS documents none (CloudFront, ElastiCache), because the account's
other tools share the same limits. botocore's standard retry mode backs off and retries when AWS
throttles anyway.

Configure with `--rate-limit SERVICE=RATE[:BURST]` (repeatable) or RECONCILER_RATE_LIMITS
("dynamodb=50,cloudfront=2:4"); a rate of 0 turns the limit off for that service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler.core.errors import ReconcilerError

# service -> (requests per second, burst)
DEFAULT_LIMITS: dict[str, tuple[float, float]] = {
    # half of DynamoDB's documented control-plane throttle ("a control plane throttle limit of 2,500 requests per
    # second", Developer Guide, "Best practices for managing the control plane"): the rest is the account's other
    # tools'; a plan of 1,000 tables is not paced at all
    "dynamodb": (1250.0, 1250.0),
    "s3": (300.0, 300.0),  # S3 documents 3,500 PUT / 5,500 GET per second per prefix
    "cloudfront": (5.0, 10.0),  # no documented call rate; CloudFront throttles early in practice
    "elasticache": (10.0, 20.0),  # no documented call rate
    "ec2": (10.0, 50.0),  # half the documented non-mutating refill rate (20/s, bucket of 100)
    "ssm": (20.0, 20.0),  # half the documented GetParameter default (40/s)
    "resourcegroupstaggingapi": (5.0, 10.0),  # no documented call rate; one paginated listing a cycle
    "sqs": (50.0, 50.0),  # the agent's own queue: a long poll at a time, and a delete per message
    "events": (5.0, 10.0),  # EventBridge: the agent's rule, ensured at start
    "cloudtrail": (1.0, 2.0),  # DescribeTrails / GetTrailStatus, at start and now and then
}
FALLBACK_LIMIT = (20.0, 40.0)  # any other service (STS, Secrets Manager, ...)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `acquire()` waits for one token.

    The clock and the sleep are injectable so the arithmetic can be tested without waiting.
    """

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = burst
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token now or in the future; return how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1  # may go negative: later callers queue behind this one
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Wait until a request may be sent; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass
class RateLimiter:
    """The buckets of every service, created on first use from the configured limits."""

    limits: dict[str, tuple[float, float]]
    fallback: tuple[float, float] | None = FALLBACK_LIMIT

    def __post_init__(self) -> None:
        self._buckets: dict[str, TokenBucket | None] = {}
        self._lock = threading.Lock()

    def bucket(self, service: str) -> TokenBucket | None:
        with self._lock:
            if service not in self._buckets:
                rate, burst = self.limits.get(service) or self.fallback or (0.0, 0.0)
                self._buckets[service] = TokenBucket(rate, burst) if rate > 0 else None
            return self._buckets[service]

    def acquire(self, service: str) -> float:
        """Wait for the service's next token (no wait when it has no limit); seconds waited."""
        bucket = self.bucket(service)
        return bucket.acquire() if bucket else 0.0


def parse_limits(entries: Iterable[str]) -> dict[str, tuple[float, float]]:
    """`["dynamodb=50", "cloudfront=2:4"]` (or one comma-separated string each) on top of the defaults."""
    limits = dict(DEFAULT_LIMITS)
    for entry in (part.strip() for text in entries for part in text.split(",")):
        if not entry:
            continue
        service, sep, value = entry.partition("=")
        rate_text, _, burst_text = value.partition(":")
        try:
            rate = float(rate_text)
            burst = float(burst_text) if burst_text else max(1.0, rate)
        except ValueError:
            rate = burst = -1.0
        if not sep or not service.strip() or rate < 0 or burst < 1:
            raise ReconcilerError(
                f"rate limit {entry!r} is not SERVICE=RATE[:BURST] (e.g. dynamodb=50 or cloudfront=2:4; "
                "RATE in requests per second, 0 for no limit; BURST >= 1)")
        limits[service.strip().lower()] = (rate, burst)
    return limits
