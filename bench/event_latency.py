"""Detection-to-correction latency with `run --watch-events`, and the requests each correction costs.

Starts a sandbox (`reconciler sandbox`, its own process), applies ten tables, and starts the agent
(`reconciler run --watch-events --interval 1h`: the scheduled cycles are out of the way, only events can
correct). Then, DRIFTS times: a table's tag is changed with boto3 (the console), and the event CloudTrail
sends for that call (tests/fixtures/cloudtrail_tag_table.json) is put on the default bus; the clock
runs from the change until the tag reads as the spec says again (polled every 20 ms).

Prints the median and p95 latency, and per correction the agent's requests, by service: the sandbox
counts every request; the benchmark's own (counted by a botocore hook) are taken off.

    python bench/event_latency.py [--drifts 50]

The sandbox delivers an event to the queue at once; on AWS, CloudTrail's delivery to EventBridge adds
its own delay (AWS documents no bound; typically seconds), which this figure does not include.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from record import Record

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "cloudtrail_tag_table.json").read_text())
TABLES = [f"bench-events-{i}" for i in range(10)]

TARGET_S = 0.3  # issue 36: event -> correction, the agent's own time

def reconciler_command() -> list[str]:
    script = Path(sys.executable).parent / "reconciler"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


def counted(endpoint: str) -> collections.Counter[str]:
    with urllib.request.urlopen(endpoint + "/_sandbox/requests") as answer:
        rows = json.load(answer)["requests"]
    return collections.Counter({f"{r['service']}:{r['operation']}": r["count"] for r in rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drifts", type=int, default=50)
    args = parser.parse_args()
    sandbox = subprocess.Popen([*reconciler_command(), "sandbox", "--port", "0", "--aws-time", "instant"],
                               stdout=subprocess.PIPE, text=True)
    endpoint = sandbox.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                                    region_name="us-east-1")
    own: collections.Counter[str] = collections.Counter()
    clients = {}
    for service in ("dynamodb", "events"):
        client = session.client(service, endpoint_url=endpoint)
        client.meta.events.register("before-call", lambda model, **_: own.update(
            [f"{model.service_model.endpoint_prefix}:{model.name}"]))
        clients[service] = client
    ddb, bus = clients["dynamodb"], clients["events"]
    with tempfile.TemporaryDirectory() as tmp:
        specs = Path(tmp) / "specs"
        specs.mkdir()
        (specs / "tables.yaml").write_text("---\n".join(
            f"apiVersion: reconciler/v1\nkind: Table\nmetadata: {{name: {t}}}\n"
            "spec:\n  partitionKey: {name: Id, type: S}\n  tags: {team: web}\n" for t in TABLES))
        subprocess.run([*reconciler_command(), "apply", "--auto-approve", str(specs)], env=env, check=True,
                       capture_output=True)
        port = _free_port()
        agent = subprocess.Popen([*reconciler_command(), "run", str(specs), "--interval", "1h", "--watch-events",
                                  "--http-port", str(port), "--http-host", "127.0.0.1",
                                  "--state-dir", str(Path(tmp) / "state")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: _status(port).get("events", {}).get("state") == "watching"
                  and _status(port).get("lastCycle"), 60)
            arns = {t: ddb.describe_table(TableName=t)["Table"]["TableArn"] for t in TABLES}
            time.sleep(1)
            before, own_before = counted(endpoint), own.copy()
            latencies = []
            for i in range(args.drifts):
                table = TABLES[i % len(TABLES)]
                ddb.tag_resource(ResourceArn=arns[table], Tags=[{"Key": "team", "Value": f"drift-{i}"}])
                started = time.perf_counter()
                event = copy.deepcopy(FIXTURE)
                event["detail"]["requestParameters"]["resourceArn"] = arns[table]
                event["detail"]["eventTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                bus.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"],
                                         "Detail": json.dumps(event["detail"])}])
                while _team(ddb, arns[table]) != "web":
                    if time.perf_counter() - started > 60:
                        raise SystemExit(f"drift {i} of {table} not corrected within 60 s")
                    time.sleep(0.02)
                latencies.append(time.perf_counter() - started)
            agent_calls = counted(endpoint) - before - (own - own_before)
        finally:
            agent.terminate()
            agent.wait()
            sandbox.terminate()
            sandbox.wait()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * len(latencies)) - 1)]
    report = Record("event_latency")
    report.say(f"event -> correction, {args.drifts} drifts of 10 tables ({os.cpu_count()} CPUs; "
               f"Python {sys.version.split()[0]}; sandbox delivery is immediate)")
    report.say()
    report.say(f"  median {statistics.median(latencies):.2f} s   p95 {p95:.2f} s   max {latencies[-1]:.2f} s")
    report.say(f"  target (a median of at most {TARGET_S} s): "
               f"{'met' if statistics.median(latencies) <= TARGET_S else 'NOT met'}")
    by_service = collections.Counter()
    for key, n in agent_calls.items():
        by_service[key.split(":", 1)[0]] += n
    report.say()
    report.say(f"  the agent's requests per correction: {sum(agent_calls.values()) / args.drifts:.2f} "
               f"({', '.join(f'{s} {n / args.drifts:.2f}' for s, n in sorted(by_service.items()))})")
    for key, n in sorted(agent_calls.items()):
        report.say(f"    {key:<40}{n / args.drifts:>6.2f}")
    report.figures = {"target_s": TARGET_S, "drifts": args.drifts, "median_s": round(statistics.median(latencies), 3),
                      "p95_s": round(p95, 3), "max_s": round(latencies[-1], 3),
                      "requests_per_correction": {k: round(n / args.drifts, 2) for k, n in agent_calls.items()}}
    report.save()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
            return json.load(answer)
    except OSError:
        return {}


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the agent did not start watching")
        time.sleep(0.2)


def _team(ddb, arn: str) -> str:
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}.get("team", "")


if __name__ == "__main__":
    main()
