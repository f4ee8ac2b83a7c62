"""How fast a command is, as a user runs it: whole processes, wall clock, the median of 10 runs each.

`reconciler --version`; `reconciler validate specs/`; `reconciler plan specs/` against a converged sandbox (the
example stack applied first; the sandbox in a process of its own at instant time); and, beside it, a bare boto3
script making the same reads a plan makes (tables, buckets, the distribution, the cache: one call each), the
floor a plan is measured against. Targets (issue 36): --version at most 0.15 s, plan at most 0.5 s.

    python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cycle import start_sandbox
from record import Record

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"version": 0.15, "plan": 0.5}
BARE = """
import boto3
ddb, s3, cf, ec = (boto3.client(s) for s in ("dynamodb", "s3", "cloudfront", "elasticache"))
for name in ddb.list_tables()["TableNames"]:
    ddb.describe_table(TableName=name)
for bucket in s3.list_buckets()["Buckets"]:
    s3.get_bucket_tagging(Bucket=bucket["Name"])
cf.list_distributions()
ec.describe_replication_groups()
"""


def median_run(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
        if done.returncode not in (0, 2):
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    script = str(Path(sys.executable).parent / "reconciler")
    sandbox, env = start_sandbox()
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "specs", Path(tmp) / "specs")
            shutil.copytree(ROOT / "site", Path(tmp) / "site")
            specs = str(Path(tmp) / "specs")
            env = {**env, "RECONCILER_STATE_DIR": str(Path(tmp) / "state")}
            subprocess.run([script, "apply", "--auto-approve", "--no-lease", specs], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            figures["version"] = median_run([script, "--version"], env, args.runs)
            figures["validate"] = median_run([script, "validate", specs], env, args.runs)
            figures["plan"] = median_run([script, "plan", "--detailed-exitcode", specs], env, args.runs)
            figures["bare_boto3"] = median_run([sys.executable, "-c", BARE], env, args.runs)
    finally:
        sandbox.terminate()
        sandbox.wait()
    report = Record("startup")
    report.say(f"whole processes, median of {args.runs} ({os.cpu_count()} CPUs): --version {figures['version']:.3f} s, "
               f"validate {figures['validate']:.3f} s, plan (converged) {figures['plan']:.3f} s; a bare boto3 script "
               f"of the same reads {figures['bare_boto3']:.3f} s")
    for name, target in TARGETS.items():
        report.say(f"target ({name} at most {target} s): {'met' if figures[name] <= target else 'NOT met'}")
    report.figures = {**{k: round(v, 3) for k, v in figures.items()}, "targets": TARGETS, "runs": args.runs}
    report.save()


if __name__ == "__main__":
    main()
