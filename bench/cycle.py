"""What one converged cycle costs: the agent's reconcile of the example stack, in process, timed by itself.

The sandbox runs in a process of its own (instant AWS time); the stack is applied (`reconciler apply`) and one
cycle run before timing starts, so every timed cycle finds nothing to do. Each cycle is the agent's whole
reconcile — fetch, load, plan (every read), the lease-free apply of nothing, the record, the Redis and site
checks — with the rate limiter off (`--rate-limit SERVICE=0` for every service): the agent's own time. The same
cycles with the default limits are reported beside it, the difference being the limiter's pacing. One cycle is
profiled (cProfile), its largest costs written to bench/results/cycle_profile.txt. Target (issue 36): a median
of at most 100 ms.

    python bench/cycle.py [--cycles 30]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import RESULTS, Record

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 100.0


def start_sandbox() -> tuple[subprocess.Popen, dict[str, str]]:
    script = Path(sys.executable).parent / "reconciler"
    sandbox = subprocess.Popen([str(script), "sandbox", "--port", "0", "--aws-time", "instant"],
                               stdout=subprocess.PIPE, text=True)
    endpoint = sandbox.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", REDIS_AUTH_TOKEN="bench-token-0123456789")
    return sandbox, env


def agent(specs: Path, state: Path, limits: tuple[str, ...]):
    from reconciler.agent.config import AgentConfig
    from reconciler.agent.start import Origin, Telling, make_agent, prepare
    from reconciler.core.log import configure_logging
    from reconciler.engine.connect import Connection, connect

    configure_logging("error", json_output=True)
    origin = Origin(specs, state_dir=state)
    source, environment = prepare(origin)
    aws = connect(Connection(rate_limits=limits), environment=environment)
    return make_agent(source, origin, aws, AgentConfig(interval_s=300), Telling(), None)


def time_cycles(built, cycles: int) -> list[float]:
    from reconciler.agent.reconcile import ALL

    built.reconciler.reconcile([ALL])  # warm: clients made, models loaded, the first look recorded
    out = []
    for _ in range(cycles):
        started = time.perf_counter()
        result = built.reconciler.reconcile([ALL])
        out.append((time.perf_counter() - started) * 1000)
        if not result.ok or any(c.is_change for c in result.plan.changes):
            raise SystemExit(f"the stack is not converged, so the figure says nothing: {result.error}")
    return out


def profile(built) -> str:
    from reconciler.agent.reconcile import ALL

    profiler = cProfile.Profile()
    profiler.enable()
    built.reconciler.reconcile([ALL])
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=30)
    args = parser.parse_args()
    from reconciler.aws.ratelimit import DEFAULT_LIMITS

    sandbox, env = start_sandbox()
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "specs", Path(tmp) / "specs")
            shutil.copytree(ROOT / "site", Path(tmp) / "site")
            specs = Path(tmp) / "specs"
            script = Path(sys.executable).parent / "reconciler"
            subprocess.run([str(script), "apply", "--auto-approve", "--no-lease", str(specs)], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            off = agent(specs, Path(tmp) / "state", tuple(f"{service}=0" for service in DEFAULT_LIMITS))
            unpaced = time_cycles(off, args.cycles)
            profiled = profile(off)
            paced = time_cycles(agent(specs, Path(tmp) / "state-paced", ()), args.cycles)
            site = specs / "site.yaml"  # the same cycles with the site fetched from the edge every time
            site.write_text(site.read_text().replace("  defaultRootObject: index.html\n",
                                                     "  defaultRootObject: index.html\n"
                                                     "  healthCheck: {intervalSeconds: 0}\n"))
            checking = time_cycles(agent(specs, Path(tmp) / "state-checking",
                                         tuple(f"{service}=0" for service in DEFAULT_LIMITS)), args.cycles)
    finally:
        sandbox.terminate()
        sandbox.wait()
    median, paced_median = statistics.median(unpaced), statistics.median(paced)
    checking_median = statistics.median(checking)
    report = Record("cycle")
    report.say(f"converged cycle of the example stack (5 resources, in process, sandbox at instant time): median "
               f"{median:.0f} ms, p90 {sorted(unpaced)[int(0.9 * len(unpaced))]:.0f} ms over {args.cycles} cycles, "
               "rate limiter off")
    report.say(f"with the default rate limits: median {paced_median:.0f} ms (the limiter's pacing: "
               f"{max(0.0, paced_median - median):.0f} ms)")
    report.say(f"with the site fetched from the edge every cycle (healthCheck.intervalSeconds: 0): median "
               f"{checking_median:.0f} ms (by default a healthy, unchanged site is checked every 300 s)")
    report.say(f"target (a median of at most {TARGET_MS:.0f} ms, limiter off): "
               f"{'met' if median <= TARGET_MS else 'NOT met'}")
    report.figures = {"median_ms": round(median, 1), "p90_ms": round(sorted(unpaced)[int(0.9 * len(unpaced))], 1),
                      "paced_median_ms": round(paced_median, 1),
                      "site_every_cycle_median_ms": round(checking_median, 1), "target_ms": TARGET_MS,
                      "cycles": args.cycles}
    report.save()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cycle_profile.txt").write_text(profiled)


if __name__ == "__main__":
    main()
