"""What the site check costs, counted where the requests arrive: at the sandbox's AWS APIs, at its edge (per
distribution domain) and at the bucket's S3 endpoint (anonymous). docs/specs.md, "The site check", states these
figures; this test holds it to them."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

from tests.conftest import ROOT


def _edge_requests(aws) -> dict[str, int]:
    with urllib.request.urlopen(aws.sandbox.endpoint + "/_sandbox/edge") as answer:
        return json.load(answer)["requests"]


def test_what_the_site_check_costs_per_cycle(cli, aws, example_specs, monkeypatch):
    env = {**aws.env, "REDIS_AUTH_TOKEN": "cost-test-token-12"}
    assert cli("apply", "--auto-approve", "--wait", "120", str(example_specs), env=env).code == 0
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from reconciler.aws import Aws
    from reconciler.engine.plan import make_plan
    from reconciler.loading import load_specs
    from reconciler.site import check_site, facts_of, sandbox_edge

    spec_set = load_specs(example_specs)
    handle = Aws()
    changes = {c.ref: c for c in make_plan(spec_set, handle).changes}  # what a cycle has planned
    dist, bucket = changes["Distribution/website"], changes["Bucket/example-site-bucket"]
    [spec] = spec_set.by_kind("Distribution")
    records: dict = {}
    edge = sandbox_edge()
    assert edge is not None and edge.sandbox

    def one_check() -> tuple[Counter[str], dict[str, int], str]:
        aws.reset_requests()
        facts = facts_of(dist.resource, dist.live, bucket.live, handle, records)
        result = check_site(spec, facts, handle, edge=edge)
        served = Counter({r["operation"]: r["count"] for r in aws.requests()})
        return served, _edge_requests(aws), result.status

    first, edge_first, status = one_check()
    assert status == "healthy"
    assert first == Counter({"GetObject": 1, "GetObject (anonymous)": 1})  # the last publish's record; the bucket
    paths = 1 + 4  # the root object and the 4 files the (first) publish changed (at most 10)
    assert edge_first == {dist.live.extra["domain"]: paths + 1}  # + the plain HTTP GET of the redirect step
    again, edge_again, _ = one_check()
    assert again == Counter({"GetObject (anonymous)": 1})  # the record's ETag is unchanged: not read again
    assert edge_again == edge_first

    said = " ".join((ROOT / "docs" / "specs.md").read_text().split())
    assert ("A check costs no AWS API request in a converged cycle (the last publish's record is read once per "
            "publish: one GetObject), one anonymous GET to the bucket, and at the edge one GET per checked path "
            "plus one plain-HTTP GET") in said
