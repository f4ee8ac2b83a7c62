"""Under throttling, 5xx, slow answers and dropped connections: never a phantom change, and
repeated applies converge."""

from __future__ import annotations

import sys

import pytest

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
