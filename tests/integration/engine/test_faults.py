"""Under throttling, 5xx, slow answers and dropped connections: never a phantom change, and
repeated applies converge."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, reconciler_command, wait_for
from tests.faults import FaultProxy

STACK = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Users}
spec:
  partitionKey: {name: UserId, type: S}
  pointInTimeRecovery: true
  tags: {team: web}
  items: [{UserId: u-1, Name: Alice}]
---
apiVersion: reconciler/v1
kind: Table
metadata: {name: Orders}
spec:
  partitionKey: {name: OrderId, type: S}
  sortKey: {name: At, type: N}
---
apiVersion: reconciler/v1
kind: Bucket
metadata: {name: fault-site}
spec:
  tags: {team: web}
---
apiVersion: reconciler/v1
kind: Distribution
metadata: {name: website}
spec:
  origin: {bucket: fault-site}
  defaultRootObject: index.html
---
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  allowFrom: [{securityGroupName: bastion}]
"""


@pytest.fixture
def faulty(aws):
    proxies = []

    def start(rate: float) -> dict[str, str]:
        proxy = FaultProxy(aws.sandbox.endpoint, rate=rate, slow_s=2.5).start()
        proxies.append(proxy)
        env = {**aws.env, "AWS_ENDPOINT_URL": proxy.endpoint, "AWS_MAX_ATTEMPTS": "2",
               "RECONCILER_AWS_READ_TIMEOUT": "1", "RECONCILER_AWS_CONNECT_TIMEOUT": "1"}
        return env, proxy

    yield start
    for p in proxies:
        p.stop()


@pytest.mark.slow
def test_failed_observations_are_never_planned_as_create_replace_or_delete(cli, specs, aws, faulty):
    root = specs("stack.yaml", STACK)
    assert cli("apply", "--auto-approve", str(root)).code == 0  # built without faults
    env, proxy = faulty(0.28)
    plans, errors, phantoms = 25, 0, []
    for _ in range(plans):
        result = cli("plan", "--json", str(root), env=env)
        assert result.code in (0, 1) and "Traceback" not in result.err
        for change in result.json["changes"]:
            if change["action"] == "error":
                errors += 1
            elif change["action"] != "noop":
                phantoms.append(change)
    injected = sum(proxy.injected.values())
    print(f"\nfaults: {injected} injected ({dict(proxy.injected)}), {proxy.forwarded} forwarded, "
          f"{plans} plans, {errors} resource errors, {len(phantoms)} phantom actions", file=sys.stderr)
    assert injected > 50 and errors > 0  # the faults really happened and really surfaced
    assert phantoms == []


@pytest.mark.slow
def test_applies_through_faults_converge(cli, specs, aws, faulty):
    root = specs("stack.yaml", STACK)
    env, proxy = faulty(0.25)
    applies = 0
    while applies < 15:
        applies += 1
        cli("apply", "--auto-approve", str(root), env=env)
        if cli("plan", "--detailed-exitcode", str(root)).code == 0:  # judged without faults
            break
    else:
        pytest.fail("15 applies through faults did not converge")
    print(f"\nconverged after {applies} applies; faults injected: {dict(proxy.injected)}", file=sys.stderr)
    assert len(aws.client("cloudfront").list_distributions()["DistributionList"]["Items"]) == 1


def metrics_of(port: int) -> dict[str, dict[str, float]]:
    """/metrics as {family: {label value: sample}} for the per-service counters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out.setdefault(sample.name, {})[sample.labels.get("service", "")] = sample.value
    return out


def test_throttles_are_retried_counted_in_metrics_and_requests_rate_limited(aws, specs, tmp_path):
    root = specs("stack.yaml", STACK.split("---")[0] + "---" + STACK.split("---")[1])  # the two tables
    proxy = FaultProxy(aws.sandbox.endpoint, rate=0.2, faults=("throttle",)).start()
    port = free_port()
    env = {**aws.env, "AWS_ENDPOINT_URL": proxy.endpoint}
    daemon = subprocess.Popen(
        [*reconciler_command(), "run", str(root), "--interval", "1h", "--http-port", str(port),
         "--http-host", "127.0.0.1", "--no-lease", "--rate-limit", "dynamodb=2:1"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "daemon.log").open("w"))
    try:  # one cycle runs at start, the next in an hour
        wait_for(lambda: metrics_of(port).get("reconciler_cycles_total"), timeout=90, what="the daemon's first cycle")
        metrics = metrics_of(port)
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        proxy.stop()
    print(f"\nthrottles injected {dict(proxy.throttled)}; counted {metrics['reconciler_aws_throttles_total']}; "
          f"rate-limited {metrics['reconciler_rate_limited_requests_total']} "
          f"({metrics['reconciler_rate_limit_wait_seconds_total']} s)", file=sys.stderr)
    assert proxy.throttled["dynamodb"] > 0
    assert metrics["reconciler_aws_throttles_total"] == {"dynamodb": proxy.throttled["dynamodb"]}  # every one
    assert metrics["reconciler_rate_limited_requests_total"]["dynamodb"] > 0  # 2/s with no burst: they waited
    assert metrics["reconciler_rate_limit_wait_seconds_total"]["dynamodb"] > 0
    ddb = aws.client("dynamodb")  # and the cycle got through the throttling: both tables exist
    assert sorted(ddb.list_tables()["TableNames"]) == ["Orders", "Users"]
