"""The docs say what the code does: the sandbox's time table lists every duration the sandbox uses."""

from __future__ import annotations

from reconciler.sandbox import TYPICAL_DURATIONS
from tests.conftest import ROOT


def test_sandbox_time_table_matches_the_durations_in_code():
    text = (ROOT / "docs" / "sandbox.md").read_text()
    for name, duration in TYPICAL_DURATIONS.items():
        row = f"| `{name}` | {duration.what} | {duration.seconds:g} s | {duration.seconds * 0.01:g} s |"
        assert row in text, f"docs/sandbox.md lacks or misstates {name}: {row}"


def test_acceptance_page_quotes_the_estimate_the_script_prints():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("acceptance", ROOT / "scripts" / "acceptance.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    sys.modules["acceptance"] = script  # its dataclasses look their module up
    spec.loader.exec_module(script)
    seconds, dollars = script.estimate()
    text = " ".join((ROOT / "docs" / "acceptance.md").read_text().split())
    assert f"about {seconds / 60:.0f} minutes" in text and f"about ${dollars:.2f}" in text


def test_deploy_page_states_what_the_task_definition_costs():
    """docs/deploy.md's monthly figure, from the task definition's size and Fargate's published prices (Linux/x86,
    us-east-1, on-demand: $0.04048 per vCPU-hour, $0.004445 per GB-hour; aws.amazon.com/fargate/pricing)."""
    import json

    task = json.loads((ROOT / "deploy" / "ecs" / "task-definition.json").read_text())
    vcpu, gb = int(task["cpu"]) / 1024, int(task["memory"]) / 1024
    monthly = (vcpu * 0.04048 + gb * 0.004445) * 730
    text = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    assert f"**${monthly:.2f} a month**" in text
    assert f"{vcpu:g} vCPU x $0.04048 + {gb:g} GB x $0.004445 per hour" in text


def test_performance_page_shows_the_committed_benchmark_results():
    """docs/performance.md's figures are bench/results/*.json's (written by the benchmarks, rendered by
    bench/report.py); a decimal figure elsewhere on the page must be one of them too, or a target or AWS-time
    factor the page names as such."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec and spec.loader
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    page = (ROOT / "docs" / "performance.md").read_text()
    results = report.results()
    assert set(results) == {"plan_scale", "event_latency", "daemon_memory", "convergence", "cycle", "startup"}
    assert report.render(page, results) == page, "run python bench/report.py"
    measured = " ".join(r["output"] for r in results.values())
    prose = report.SECTION.sub("", page)
    targets_and_factors = {"1.1", "1.3", "0.01", "0.02"}
    stray = [n for n in re.findall(r"\d+\.\d+", prose) if n not in measured and n not in targets_and_factors]
    assert stray == [], f"figures on docs/performance.md that no committed result holds: {stray}"
