"""The site as its visitors get it: the site check through the sandbox's edge, at AWS's (scaled) time.

The sandbox's edge keeps what CloudFront keeps (the cache policy's TTLs and the objects' Cache-Control, at the time
factor) and drops it when an invalidation covering it completes; the bucket refuses anonymous reads as S3 does. What
is stale, and for how long, comes from that, not from the test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for

CSS = "assets/site.css"


def _health(cli, root: Path, env: dict[str, str]) -> tuple[int, dict]:
    done = cli("health", "--json", str(root), env=env)
    assert done.out, done.err
    return done.code, json.loads(done.out)


def _site(document: dict) -> dict:
    [site] = document["distributions"]
    return site


def _publish_without_invalidation(root: Path) -> None:
    site_yaml = root / "site.yaml"
    site_yaml.write_text(site_yaml.read_text().replace("    invalidate: website\n", ""))


@pytest.mark.slow(weight=3)
def test_stale_content_is_found_and_an_invalidation_clears_it_at_aws_time_and_an_open_bucket_is_closed(
        aws, cli, example_specs, redis_server, monkeypatch):
    root = example_specs
    cache = root / "cache.yaml"  # its check reaches a real redis-server (the sandbox has no Redis data plane)
    checked = f'healthCheck: {{timeoutSeconds: 2, endpoint: "{redis_server.endpoint}", tls: false}}'
    cache.write_text(cache.read_text().replace("healthCheck: {timeoutSeconds: 2}", checked))
    env = {**aws.env, "REDIS_AUTH_TOKEN": redis_server.password}
    aws.set_time(0.01)
    applied = cli("apply", "--auto-approve", "--wait=300", str(root), env=env, timeout=400)
    assert applied.code == 0, applied.err[-3000:]

    code, document = _health(cli, root, env)
    assert code == 0, document
    [cluster] = document["clusters"]
    assert cluster["status"] == "healthy" and [s["step"] for s in cluster["steps"]][-1] == "del"
    site = _site(document)
    assert site["status"] == "healthy", site
    assert [s["step"] for s in site["steps"]] == ["dns", "tls", "redirect", "content", "origin"]
    assert all(s["ok"] for s in site["steps"])
    assert {p["path"]: p["state"] for p in site["paths"]}[f"/{CSS}"] == "current"  # the first publish's keys
    assert "301 https://" in next(s for s in site["steps"] if s["step"] == "redirect")["detail"]
    assert "403 (refused)" in next(s for s in site["steps"] if s["step"] == "origin")["detail"]
    _what_a_check_costs(aws, root, env, monkeypatch)

    # An asset changed and published without an invalidation: the edge keeps the old copy for its TTL (a year,
    # Cache-Control max-age=31536000 within Managed-CachingOptimized's MaxTTL), far past maxStaleSeconds.
    site_dir = root.parent / "site"
    (site_dir / CSS).write_text((site_dir / CSS).read_text() + "\nbody { color: #123456; }\n")
    _publish_without_invalidation(root)
    assert cli("apply", "--auto-approve", str(root), env=env).code == 0
    published = aws.client("s3").head_object(Bucket="example-site-bucket", Key=CSS)["ETag"].strip('"')
    code, document = _health(cli, root, env)
    site = _site(document)
    assert code == 1 and site["status"] == "unhealthy", site
    stale = {p["path"]: p for p in site["paths"]}[f"/{CSS}"]
    assert stale["state"] == "stale" and stale["published"] == published and stale["served"] != published
    assert stale["cache"] == "Hit from cloudfront"
    assert "no invalidation covers it" in stale["detail"] and published in stale["detail"]
    assert CSS in site["error"] and "invalidate" in site["cause"]
    cycle = cli("run", "--once", "--require-healthy", str(root), env=env)  # the agent cannot fix it: it says so
    assert cycle.code == 1 and '"event": "site.unhealthy"' in cycle.err, cycle.err[-2000:]

    # The same with an invalidation: stale while it runs (AWS's ~2 min for one, here x 0.3), then current after
    # AWS's time for it, without another publish.
    aws.set_time(0.3)
    (root / "site.yaml").write_text((root / "site.yaml").read_text().replace(
        "    prune: true\n", "    prune: true\n    invalidate: website\n"))
    (site_dir / CSS).write_text((site_dir / CSS).read_text() + "\nh1 { margin: 0; }\n")
    assert cli("apply", "--auto-approve", str(root), env=env).code == 0
    started = time.monotonic()
    code, document = _health(cli, root, env)
    site = _site(document)
    assert code == 0 and site["status"] == "stale", site
    running = {p["path"]: p for p in site["paths"]}[f"/{CSS}"]
    assert running["state"] == "stale" and "in progress since" in running["detail"], running
    cf = aws.client("cloudfront")
    dist_id = cf.list_distributions()["DistributionList"]["Items"][0]["Id"]
    [invalidation] = [i for i in cf.list_invalidations(DistributionId=dist_id)["InvalidationList"]["Items"]
                      if i["Status"] == "InProgress"]
    assert invalidation["Id"] in running["detail"]

    def current() -> dict | None:
        code, document = _health(cli, root, env)
        return _site(document) if code == 0 and _site(document)["status"] == "healthy" else None

    healthy = wait_for(current, timeout=120, what="the invalidation to complete and the site to be current",
                       interval=2)
    assert time.monotonic() - started > 120 * 0.3 * 0.5  # it took AWS's time (not instant)
    assert {p["path"]: p["state"] for p in healthy["paths"]}[f"/{CSS}"] == "current"
    assert cf.get_invalidation(DistributionId=dist_id, Id=invalidation["Id"])["Invalidation"]["Status"] == "Completed"
    _an_open_bucket_is_a_finding_and_the_next_cycle_closes_it(aws, cli, root, env)


def _an_open_bucket_is_a_finding_and_the_next_cycle_closes_it(aws, cli, root: Path, env: dict[str, str]) -> None:
    """A console user: Block Public Access off, and a statement for everyone added to the bucket policy."""
    s3 = aws.client("s3")
    s3.delete_public_access_block(Bucket="example-site-bucket")
    policy = json.loads(s3.get_bucket_policy(Bucket="example-site-bucket")["Policy"])
    policy["Statement"].append({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                "Resource": "arn:aws:s3:::example-site-bucket/*"})
    s3.put_bucket_policy(Bucket="example-site-bucket", Policy=json.dumps(policy))

    code, document = _health(cli, root, env)
    site = _site(document)
    assert code == 1 and site["status"] == "unhealthy" and site["security"] is True, site
    assert "bucket example-site-bucket serves 'index.html' to anyone" in site["error"]
    assert "'PublicRead'" in site["cause"] and "Block Public Access" in site["cause"]
    assert [s["ok"] for s in site["steps"]][-1] is False

    cycle = cli("run", "--once", "--require-healthy", str(root), env=env)  # the agent puts both back
    assert cycle.code == 0, cycle.err[-3000:]
    code, document = _health(cli, root, env)
    assert code == 0 and _site(document)["status"] == "healthy", document
    assert "PublicRead" not in s3.get_bucket_policy(Bucket="example-site-bucket")["Policy"]
    assert all(s3.get_public_access_block(Bucket="example-site-bucket")["PublicAccessBlockConfiguration"].values())


def _edge_requests(aws) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(aws.sandbox.endpoint + "/_sandbox/edge") as answer:
        return json.load(answer)["requests"]


def _what_a_check_costs(aws, root: Path, env: dict[str, str], monkeypatch) -> None:
    """What the site check costs in a cycle, counted where the requests arrive: the sandbox's AWS APIs, its edge
    (per domain) and the bucket's S3 endpoint (anonymous). docs/specs.md states these figures."""
    from collections import Counter

    from tests.conftest import ROOT

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from reconciler.aws.client import Aws
    from reconciler.checks.run import facts_of
    from reconciler.checks.site import check_site
    from reconciler.checks.viewer import sandbox_edge
    from reconciler.engine.load import load_specs
    from reconciler.engine.plan import make_plan

    spec_set = load_specs(root)
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


@pytest.mark.slow(weight=3)
def test_the_agent_reports_a_stale_site_and_its_recovery(aws, cli, example_specs, tmp_path):
    """The daemon: the site block on the page (in a real Chromium), /status, /metrics, health.degraded and
    health.recovered events with the cause, as for Redis."""
    import os
    import shutil
    import subprocess
    import urllib.request

    from tests.conftest import ROOT, free_port, reconciler_command
    from tests.e2e.conftest import stop_gently
    from tests.e2e.test_status_page import browser

    root = example_specs
    env = {**aws.env, "REDIS_AUTH_TOKEN": "example-token-123456"}
    aws.set_time(0.01)
    assert cli("apply", "--auto-approve", "--wait=300", str(root), env=env, timeout=400).code == 0
    port, log = free_port(), tmp_path / "daemon.log"
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "2s", "--http-port", str(port),
                             "--no-lease", "--state-dir", str(tmp_path / "state")],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.read().decode()

    def site_status() -> str | None:
        try:
            sites = json.loads(get("/status")).get("site") or []
        except OSError:
            return None
        return sites[0]["status"] if sites else None

    def events() -> list[dict]:
        return json.loads(get("/events"))["events"]

    try:
        wait_for(lambda: site_status() == "healthy", timeout=90, what="the agent's first site check")
        site_dir = root.parent / "site"
        (site_dir / CSS).write_text((site_dir / CSS).read_text() + "\nbody { color: #654321; }\n")
        _publish_without_invalidation(root)
        wait_for(lambda: site_status() == "unhealthy", timeout=90, what="the stale asset found by the agent")
        degraded = wait_for(lambda: [e for e in events() if e["type"] == "health.degraded"
                                     and e.get("kind") == "Distribution"], what="health.degraded")
        assert CSS in degraded[0]["message"] and "no invalidation covers it" in degraded[0]["message"]
        assert "likely cause" in degraded[0]["message"]
        metrics = get("/metrics")
        assert 'reconciler_site_check_seconds{distribution="website",step="content"}' in metrics
        assert 'reconciler_site_healthy{distribution="website"} 0.0' in metrics

        driver = browser(True, 1280, 1400, dark=False)
        try:
            from selenium.webdriver.common.by import By

            driver.get(f"http://127.0.0.1:{port}/")
            block = driver.find_element(By.CSS_SELECTOR, "table.site[data-distribution='website']")
            text = block.text
            for step in ("dns", "tls", "redirect", "content"):
                assert step in text
            assert f"/{CSS}" in text and "stale" in text and "unhealthy" in text
            shot = tmp_path / "site-check.png"
            assert block.screenshot(str(shot)) and shot.stat().st_size > 10_000
        finally:
            driver.quit()
        if os.environ.get("RECONCILER_UPDATE_SCREENSHOT"):  # docs/site-check.png is taken by this test
            shutil.copy(shot, ROOT / "docs" / "site-check.png")

        # The operator invalidates the path through the spec: the agent issues it, and the site recovers.
        site_yaml = root / "site.yaml"
        site_yaml.write_text(site_yaml.read_text().replace(
            '    - {paths: ["/index.html"], revision: "2025-09-23"}',
            '    - {paths: ["/index.html"], revision: "2025-09-23"}\n    - {paths: ["/assets/*"], revision: 1}'))
        recovered = wait_for(lambda: [e for e in events() if e["type"] == "health.recovered"
                                      and e.get("kind") == "Distribution"], timeout=90, what="health.recovered")
        assert "served as published again" in recovered[0]["message"]
        assert site_status() in ("healthy", "stale")
    finally:
        stop_gently(proc)
