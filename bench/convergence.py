"""How long do changes take to converge on a sandbox that keeps AWS's time, and how long is a cycle?

Runs the end-to-end scenario of tests/e2e/test_aws_time.py (the example stack created; a billing switch
with an index plus two new indexes, a node type change plus a replica and a distribution change in one
commit; replicas to 0; an allowed cache replacement) with `reconciler run --once` as a subprocess, cycle
after cycle, at each AWS time factor given. Prints, per stage: cycles to convergence, seconds, the longest
cycle, and the writes the sandbox refused (AWS's error codes; the target is zero).

    python bench/convergence.py [--factors 0.005,0.01,0.02]

At factor F, AWS's typical durations are multiplied by F (0.01: a 10-minute cache creation takes 6 s);
convergence time follows AWS's time, cycle length must not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from record import Record  # noqa: E402  (bench/record.py)

from reconciler.sandbox import ISOLATE, Sandbox  # noqa: E402
from tests.e2e.convergence import SCENARIO, converge, reconciler_command  # noqa: E402


def refused_writes(box: Sandbox) -> dict[str, int]:
    with urllib.request.urlopen(box.endpoint + "/_sandbox/requests") as answer:
        rows = json.load(answer)["requests"]
    return {f"{r['operation']}:{code}": n for r in rows if not r["read"] for code, n in r["errors"].items()}


def run(factor: float) -> list[tuple[str, int, float, float, dict[str, int], bool]]:
    box = Sandbox(aws_time=factor)
    box.start()
    # moto's models are global to this process: start each factor from an empty account
    urllib.request.urlopen(urllib.request.Request(box.endpoint + "/moto-api/reset", method="POST")).close()
    box.seed()
    try:
        work = Path(tempfile.mkdtemp(prefix="convergence-"))
        shutil.copytree(ROOT / "specs", work / "specs")
        shutil.copytree(ROOT / "site", work / "site")
        env = {k: v for k, v in os.environ.items() if k not in ISOLATE and not k.startswith("AWS_ENDPOINT_URL")}
        env.update(box.environment(), AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                   RECONCILER_STATE_DIR=str(work / "state"), REDIS_AUTH_TOKEN="bench-token-0123456789")
        rows = []
        for name, change in SCENARIO:
            change(work / "specs")
            result = converge(reconciler_command(), work / "specs", env, work)
            rows.append((name, len(result.cycles), result.seconds, result.longest_cycle_s, refused_writes(box),
                         result.converged))
        shutil.rmtree(work, ignore_errors=True)
        return rows
    finally:
        box.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factors", default="0.005,0.01,0.02")
    args = parser.parse_args()
    report = Record("convergence")
    report.say(f"{'factor':>7}  {'stage':<62} {'cycles':>6} {'seconds':>8} {'longest cycle':>13}  refused writes")
    figures = []
    for factor in (float(f) for f in args.factors.split(",")):
        for name, cycles, seconds, longest, refused, converged in run(factor):
            mark = "" if converged else "  (NOT converged)"
            report.say(f"{factor:>7}  {name:<62} {cycles:>6} {seconds:>8.1f} {longest:>12.2f}s  "
                       f"{sum(refused.values())} {refused or ''}{mark}".rstrip())
            figures.append({"factor": factor, "stage": name, "cycles": cycles, "seconds": round(seconds, 1),
                            "longest_cycle_s": round(longest, 2), "refused_writes": dict(refused),
                            "converged": converged})
    report.figures = {"stages": figures}
    report.save()


if __name__ == "__main__":
    main()
