"""Does the agent leak? RSS after 10 and after 1,000 cycles of a converged stack.

The sandbox runs as its own process; the agent runs here, cycle after cycle, exactly as
`reconciler run` drives it (Agent.cycle), on the example stack. Target (issue 9): RSS after
1,000 cycles within 10 % of RSS after 10. RSS after 100 is printed too: the thread pool and
allocator arenas are still warming up at 10.

The client-side rate limiter is off here: cycles run back to back (a real agent waits minutes
between them), and CloudFront's default budget (5 requests/s) would pace them to it, so the
time per cycle would measure the limiter instead of the agent.

    python bench/daemon_memory.py [--cycles 1000]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1000)
    args = parser.parse_args()
    script = Path(sys.executable).parent / "reconciler"
    sandbox = subprocess.Popen([str(script), "sandbox", "--port", "0", "--aws-time", "instant"], stdout=subprocess.PIPE,
                               text=True)
    endpoint = sandbox.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox",
                      AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", RECONCILER_SANDBOX="1",
                      AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                      REDIS_AUTH_TOKEN="bench-token-0123456789")
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(key, None)

    from reconciler.agent import Agent, DirectorySource
    from reconciler.aws import Aws
    from reconciler.log import configure_logging
    from reconciler.ratelimit import RateLimiter

    configure_logging("error", json_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "specs", Path(tmp) / "specs")
        shutil.copytree(ROOT / "site", Path(tmp) / "site")
        agent = Agent(DirectorySource(Path(tmp) / "specs"), Aws(limiter=RateLimiter({}, fallback=None)), interval_s=60)
        assert agent.cycle().ok, "the first cycle (creating the stack) failed"
        marks: dict[int, float] = {}
        started = time.perf_counter()
        for n in range(1, args.cycles + 1):
            result = agent.cycle()
            assert result.ok, result.error
            if n in (10, 100, args.cycles):
                gc.collect()
                marks[n] = rss_mib()
        elapsed = time.perf_counter() - started
    sandbox.terminate()
    sandbox.wait()
    growth = (marks[args.cycles] - marks[10]) / marks[10] * 100
    print(f"agent RSS after 10 cycles: {marks[10]:.1f} MiB; after 100: {marks.get(100, float('nan')):.1f} MiB; "
          f"after {args.cycles}: {marks[args.cycles]:.1f} MiB "
          f"({growth:+.1f} %); {elapsed / args.cycles * 1000:.0f} ms per converged cycle of the example stack")
    print(f"target (within 10 %): {'met' if abs(growth) <= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
