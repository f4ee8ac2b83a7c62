"""The sandbox's own AWS rules (tests/sandbox-rules/, in the conformance corpus's format, with AWS's words and
sources): anonymous reads of a bucket, and what a viewer gets from a distribution's edge. Run with the project's
runner on a sandbox of their own, at a small factor of AWS's time."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from reconciler.sandbox import Sandbox
from tests.conformance import Case, Runner, StepFailed, load_cases
from tests.conftest import ROOT, sandbox_client

CASES = load_cases(ROOT / "tests" / "sandbox-rules")
FACTOR = 0.02


@pytest.fixture(scope="module")
def rules_sandbox() -> Iterator[Sandbox]:
    box = Sandbox(aws_time=FACTOR)
    box.start()
    yield box
    box.stop()


def _runner(box: Sandbox) -> Runner:
    with urllib.request.urlopen(box.endpoint + "/_sandbox/edge") as answer:
        edge = json.load(answer)
    host, _, port = edge["address"].rpartition(":")

    def anonymous(service: str) -> object:
        return boto3.client(service, endpoint_url=box.endpoint, region_name="us-east-1",
                            config=Config(signature_version=UNSIGNED))

    def edge_get(domain: str, path: str, https: bool) -> tuple[int, dict[str, str], bytes]:
        raw = socket.create_connection((host, int(port)), timeout=10)
        sock = (ssl.create_default_context(cafile=edge["caFile"]).wrap_socket(raw, server_hostname=domain)
                if https else raw)
        conn = http.client.HTTPConnection(domain, int(port), timeout=10)
        conn.sock = sock
        try:
            conn.request("GET", path, headers={"Host": domain})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    return Runner(lambda service: sandbox_client(box.endpoint, service), box.clock.factor, anonymous, edge_get)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_rule_of_the_sandbox_holds(rules_sandbox, case: Case):
    _runner(rules_sandbox).run(case)


def test_the_edge_steps_can_fail(rules_sandbox):
    """A rule AWS does not have (the edge serving the new copy at once) is reported, not passed."""
    [cached] = [c for c in CASES if c.id == "cloudfront.edge.cached-until-invalidated"]
    steps = [s for s in cached.steps if "edge" not in s or s["edge"].get("body") != "one" or "headers" not in s]
    replaced = steps.index(next(s for s in steps if s.get("call") == "cloudfront.create_invalidation"))
    wrong = Case("made-up.served-at-once", "-", "-",
                 [*steps[:replaced], {"edge": {"domain": "{domain}", "path": "/index.html", "body": "two"}}])
    with pytest.raises(StepFailed, match="body b'one'"):
        _runner(rules_sandbox).run(wrong)


def test_every_rule_cites_aws():
    for case in CASES:
        assert case.source.startswith("https://docs.aws.amazon.com/") and case.quote, case.id
    assert {Path(c.file).name for c in CASES} == {"s3.yaml", "cloudfront-edge.yaml"}
