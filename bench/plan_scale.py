"""How fast is `reconciler plan`, and how many requests does it make, against the floor of the reads it needs?

Starts a sandbox (moto server on loopback), creates N tables (10 % of them drifted), and times
`reconciler plan` (a subprocess, as a user runs it) against a bare boto3 script (also a subprocess)
that makes only the batched reads a Table spec managing keys, billing mode and tags needs: DescribeTable
per table, and one paginated Resource Groups Tagging API listing (GetResources, filtered by the
ownership tag) for every table's tags, with the same concurrency. Prints: N, median seconds of each
over several runs, the ratio, requests per resource (counted at the server), the plan's peak RSS, and
the writes (a converged plan makes none). One more row for the example stack (5 resources).
The sandbox runs as its own process (`reconciler sandbox`): a child's peak RSS on Linux includes its
parent's at the fork, so this process stays small.

    python bench/plan_scale.py [--sizes 10,300,1000] [--runs 5] [--workers 16]

Targets (issue 36): plan time <= 1.2x the floor at N=10 and <= 1.15x at N=300 and N=1000, with <= 1.1
requests per table; the example stack <= 3 requests per resource; zero writes everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import boto3
from record import Record

ROOT = Path(__file__).resolve().parent.parent

BASELINE = textwrap.dedent("""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    import botocore.config

    names, workers = sys.argv[1:-1], int(sys.argv[-1])
    config = botocore.config.Config(max_pool_connections=max(10, workers))
    ddb = boto3.client("dynamodb", config=config)
    tagging = boto3.client("resourcegroupstaggingapi", config=config)
    TYPES = ["dynamodb:table", "s3:bucket", "elasticache:replicationgroup", "cloudfront:distribution"]

    def tags():
        pages = tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "managed-by", "Values": ["reconciler"]}], ResourceTypeFilters=TYPES,
            ResourcesPerPage=100)
        return {r["ResourceARN"]: r["Tags"] for page in pages for r in page["ResourceTagMappingList"]}

    def read(name):
        return ddb.describe_table(TableName=name)["Table"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        listing = pool.submit(tags)
        tables = list(pool.map(read, names))
        listing.result()
""")

RATIO_TARGETS = {10: 1.2, 300: 1.15, 1000: 1.15}  # plan time / the floor's (issue 36)

def reconciler_command() -> list[str]:
    script = Path(sys.executable).parent / "reconciler"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, int]:
    """Wall seconds, exit code and peak RSS (KiB) of one subprocess."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{command[0]} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return elapsed, proc.returncode, usage.ru_maxrss


def requests(endpoint: str, reset: bool = False) -> list[dict]:
    method = "DELETE" if reset else "GET"
    with urllib.request.urlopen(urllib.request.Request(endpoint + "/_sandbox/requests", method=method)) as answer:
        return json.load(answer)["requests"]


def make_tables(ddb, specs_dir: Path, n: int) -> list[str]:
    names = [f"bench-{n}-{i:04}" for i in range(n)]
    docs = []
    for i, name in enumerate(names):
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
                         Tags=[{"Key": "managed-by", "Value": "reconciler"}, {"Key": "reconciler:name", "Value": name},
                               {"Key": "team", "Value": "drifted" if i % 10 == 0 else "web"}])
        docs.append(f"apiVersion: reconciler/v1\nkind: Table\nmetadata: {{name: {name}}}\nspec:\n"
                    f"  partitionKey: {{name: Id, type: S}}\n  billingMode: PAY_PER_REQUEST\n"
                    f"  tags: {{team: web}}\n")
    specs_dir.mkdir(parents=True)
    for start in range(0, n, 100):
        (specs_dir / f"tables-{start:04}.yaml").write_text("---\n".join(docs[start:start + 100]))
    return names


def measure(label: str, n: int, specs_dir: Path, names: list[str], env: dict[str, str], endpoint: str,
            runs: int, workers: int, work: Path) -> dict:
    plan_cmd = [*reconciler_command(), "plan", "--detailed-exitcode", "--workers", str(workers), str(specs_dir)]
    base_cmd = [sys.executable, "-c", BASELINE, *names, str(workers)]
    plan_times, base_times, rss, per_table, writes = [], [], [], [], 0
    for _ in range(runs):
        requests(endpoint, reset=True)
        seconds, _, peak = timed(plan_cmd, env, work)
        counted = requests(endpoint)
        plan_times.append(seconds)
        rss.append(peak)
        per_table.append(sum(r["count"] for r in counted) / max(n, 1))
        writes += sum(r["count"] for r in counted if not r["read"])
        if names:
            base_times.append(timed(base_cmd, env, work)[0])
    plan_s = statistics.median(plan_times)
    base_s = statistics.median(base_times) if base_times else float("nan")
    ratio = plan_s / base_s if base_times else None
    return {"label": label, "n": n, "plan_s": plan_s, "base_s": base_s, "ratio": ratio,
            "requests_per_table": statistics.median(per_table), "peak_rss_mib": max(rss) / 1024, "writes": writes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,300,1000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    sandbox = subprocess.Popen([*reconciler_command(), "sandbox", "--port", "0", "--aws-time", "instant"],
                               stdout=subprocess.PIPE, text=True)
    endpoint = sandbox.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]  # "... listening on URL — ..."
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", REDIS_AUTH_TOKEN="bench-token-0123456789")
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # the whole example stack first, in an account that holds only it (as a user's does), planned converged
        shutil.copytree(ROOT / "specs", work / "example" / "specs")
        shutil.copytree(ROOT / "site", work / "example" / "site")
        subprocess.run([*reconciler_command(), "apply", "--auto-approve", str(work / "example" / "specs")],
                       env=env, cwd=work, check=True, capture_output=True)
        example = measure("example stack", 5, work / "example" / "specs", [], env, endpoint, args.runs,
                          args.workers, work)
        for n in (int(s) for s in args.sizes.split(",")):
            names = make_tables(ddb, work / f"specs-{n}", n)
            rows.append(measure(f"{n} tables", n, work / f"specs-{n}", names, env, endpoint, args.runs,
                                args.workers, work))
            print(f"  measured N={n}", file=sys.stderr)
        rows.append(example)
    sandbox.terminate()
    sandbox.wait()

    report = Record("plan_scale")
    report.say(f"reconciler plan vs a bare boto3 script of the same batched reads ({args.runs} runs, median; "
               f"{args.workers} workers; {os.cpu_count()} CPUs; Python {sys.version.split()[0]})")
    report.say()
    report.say(f"{'stack':<15}{'N':>6}{'plan s':>9}{'floor s':>9}{'ratio':>7}{'req/res':>9}{'peak RSS':>10}"
               f"{'writes':>8}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        base = f"{r['base_s']:.2f}" if r["ratio"] is not None else "-"
        report.say(f"{r['label']:<15}{r['n']:>6}{r['plan_s']:>9.2f}{base:>9}{ratio:>7}"
                   f"{r['requests_per_table']:>9.2f}{r['peak_rss_mib']:>8.0f}MiB{r['writes']:>8}")
    report.say()
    for r in rows:
        if r["n"] in RATIO_TARGETS and r["ratio"] is not None:
            target = RATIO_TARGETS[r["n"]]
            ok = r["ratio"] <= target and r["requests_per_table"] <= 1.1 and r["writes"] == 0
            report.say(f"N={r['n']} targets (ratio <= {target}, <= 1.1 requests/table, 0 writes): "
                       f"{'met' if ok else 'NOT met'}")
        if r["label"] == "example stack":
            ok = r["requests_per_table"] <= 3 and r["writes"] == 0
            report.say(f"example stack target (<= 3 requests/resource, 0 writes): {'met' if ok else 'NOT met'}")
    report.figures = {"runs": args.runs, "rows": rows}
    report.save()


if __name__ == "__main__":
    main()
