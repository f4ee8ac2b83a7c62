"""The token bucket's arithmetic, on an injected clock (nothing here waits or times anything)."""

from __future__ import annotations

import threading

import pytest

from reconciler.aws.ratelimit import DEFAULT_LIMITS, RateLimiter, TokenBucket, parse_limits
from reconciler.core.errors import ReconcilerError


class FakeClock:
    """A clock that moves only when told to, or when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(rate: float, burst: float) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


def test_a_full_bucket_lets_a_burst_through_then_spaces_requests_at_the_rate():
    limiter, clock = bucket(rate=5, burst=3)
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire() == pytest.approx(0.2)  # the 4th waits for one token at 5/s
    assert limiter.acquire() == pytest.approx(0.2)
    assert clock.slept == pytest.approx([0.2, 0.2])


def test_idle_time_refills_the_bucket_but_never_beyond_its_burst():
    limiter, clock = bucket(rate=2, burst=4)
    for _ in range(4):
        limiter.acquire()
    clock.now += 1.0  # two tokens back
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.5])
    clock.now += 3600  # an hour idle: still only `burst` tokens
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[:4] == [0, 0, 0, 0] and waits[4] > 0


def test_waiting_callers_queue_one_behind_another():
    limiter, _ = bucket(rate=10, burst=1)
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0, 0.1, 0.2, 0.3])


def test_the_bucket_is_safe_to_share_between_threads():
    limiter, _ = bucket(rate=1, burst=50)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            w = limiter.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits)[:50] == [0] * 50  # exactly the burst went through without waiting
    assert sorted(waits)[50:] == pytest.approx([float(n) for n in range(1, 51)])


def test_limits_parse_on_top_of_the_defaults_and_zero_turns_one_off():
    limits = parse_limits(["cloudfront=2:4", "dynamodb=50, s3=0"])
    assert limits["cloudfront"] == (2, 4) and limits["dynamodb"] == (50, 50) and limits["s3"][0] == 0
    assert limits["elasticache"] == DEFAULT_LIMITS["elasticache"]
    limiter = RateLimiter(limits)
    assert limiter.bucket("s3") is None and limiter.acquire("s3") == 0
    assert limiter.bucket("cloudfront") is not None and limiter.bucket("cloudfront").burst == 4
    assert limiter.bucket("sts") is not None  # services without their own limit get the fallback


def test_the_defaults_stay_below_awss_documented_control_plane_limits():
    assert DEFAULT_LIMITS["dynamodb"][0] < 2500  # DynamoDB: 2,500 control-plane requests/s
    assert DEFAULT_LIMITS["ec2"][0] < 20  # EC2: non-mutating actions refill at 20/s
    assert DEFAULT_LIMITS["ssm"][0] < 40  # SSM GetParameter: 40/s


@pytest.mark.parametrize("bad", ["dynamodb", "=5", "dynamodb=fast", "dynamodb=-1", "cloudfront=2:0"])
def test_a_malformed_limit_is_a_clear_error(bad):
    with pytest.raises(ReconcilerError, match="SERVICE=RATE"):
        parse_limits([bad])
