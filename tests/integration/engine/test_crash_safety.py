"""The agent killed with SIGKILL right after each of its writes, at AWS's time, then run again: it converges,
with no duplicate, no write AWS refused, and no AUTH token left half-rotated.

Scenarios: creating a stack (by `apply` and by the daemon, `run`), a multi-step update (a billing switch
with indexes, a node type with a replica, an AUTH token ROTATE then SET), a replacement (delete, wait until
gone, create) and tombstone deletes. For each, one run without a kill counts its writes; then for every k,
a run is killed by the sandbox right after serving its k-th write, and a second run (`apply --wait`) must
converge. The sandbox runs at AWS's time x 0.002 (a cache is created in 1.2 s), so the
killed run and the rerun meet AWS's states (CREATING, modifying, InProgress) as on an account. Boundaries
run side by side on a pool of sandbox processes, each reset to a fresh account before each run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox import is_read
from tests.conftest import free_port, reconciler_command, sandbox_client

FACTOR = 0.002
POOL = 3
OLD, NEW = "old-token-0123456789", "new-token-0123456789"


def _doc(kind: str, name: str, spec: str, metadata: str = "") -> str:
    return f"apiVersion: reconciler/v1\nkind: {kind}\nmetadata: {{name: {name}{metadata}}}\nspec:\n{spec}---\n"


USERS = _doc("Table", "Users", "  partitionKey: {name: UserId, type: S}\n  pointInTimeRecovery: true\n"
                               "  ttl: {attribute: ExpiresAt}\n  tags: {team: web}\n"
                               "  items: [{UserId: u-1, Name: Al}]\n")
SITE = (_doc("Bucket", "crash-site", "  tags: {team: web}\n")
        + _doc("Distribution", "website", "  origin: {bucket: crash-site}\n  defaultRootObject: index.html\n"))
CACHE = ("  nodeType: NODE\n  replicas: REPLICAS\n  allowFrom: [{securityGroupName: bastion}]\n"
         "  authToken: {fromEnv: REDIS_AUTH_TOKEN}\n")
STACK = USERS + SITE + _doc("CacheCluster", "app-cache", CACHE.replace("NODE", "cache.t3.micro")
                            .replace("REPLICAS", "1"))
ORDERS = ("  partitionKey: {name: OrderId, type: S}\n  BILLING\n  globalSecondaryIndexes:\n"
          "    - {name: ByCustomer, partitionKey: {name: Customer, type: S}, projection: KEYS_ONLY}\nMORE")
BY_STATUS = "    - {name: ByStatus, partitionKey: {name: Status, type: S}, projection: ALL}\n"
UPDATE_BASE = (_doc("Table", "Orders", ORDERS.replace("BILLING", "billingMode: PAY_PER_REQUEST").replace("MORE", ""))
               + _doc("CacheCluster", "app-cache", CACHE.replace("NODE", "cache.t3.micro").replace("REPLICAS", "0")))
UPDATE = (_doc("Table", "Orders", ORDERS.replace("BILLING", "billingMode: PROVISIONED\n  capacity: {read: 5, write: 5}")
                                        .replace("MORE", BY_STATUS))
          + _doc("CacheCluster", "app-cache", CACHE.replace("NODE", "cache.t3.small").replace("REPLICAS", "1")))
KEYED = "  partitionKey: {name: KEY, type: S}\n  items: [{KEY: k-1, Note: kept as declared}]\n"
REPLACE_BASE = _doc("Table", "Keyed", KEYED.replace("KEY", "Id"))
REPLACE = _doc("Table", "Keyed", KEYED.replace("KEY", "Key"), ", allowReplacement: true")
GONE = ", state: absent, deletion: delete"
DELETE_BASE = (_doc("Table", "Old", "  partitionKey: {name: Id, type: S}\n  deletionProtection: true\n") + SITE)
DELETE = (_doc("Table", "Old", "  partitionKey: {name: Id, type: S}\n", GONE)
          + _doc("Bucket", "crash-site", "  tags: {team: web}\n")
          + _doc("Distribution", "website", "  origin: {bucket: crash-site}\n", GONE))


@dataclass
class Scenario:
    name: str
    target: str
    base: str = ""
    token: str = OLD           # the token the target asks for (the base always has OLD)
    daemon: bool = False       # killed: the daemon (`run`); else `apply --wait`
    expected: dict[str, int] = field(default_factory=dict)


SCENARIOS = [
    Scenario("create the stack (apply)", STACK, expected={"tables": 1, "distributions": 1, "oacs": 1, "caches": 1,
                                                          "buckets": 1, "cache security groups": 1}),
    Scenario("create the stack (the daemon, run)", STACK, daemon=True,
             expected={"tables": 1, "distributions": 1, "oacs": 1, "caches": 1, "buckets": 1,
                       "cache security groups": 1}),
    Scenario("billing switch with indexes, node type + replica, AUTH ROTATE then SET", UPDATE, UPDATE_BASE, NEW,
             expected={"tables": 1, "caches": 1, "cache security groups": 1}),
    Scenario("replace a table (backup, delete, wait until gone, create)", REPLACE, REPLACE_BASE,
             expected={"tables": 1}),
    Scenario("tombstone deletes (a protected table; a distribution: disable, deployed, delete)", DELETE,
             DELETE_BASE, expected={"tables": 0, "distributions": 0, "oacs": 0, "buckets": 1}),
]


class SandboxProcess:
    """`reconciler sandbox` in a process of its own: a fresh account before each run (POST /_sandbox/reset)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="sandbox-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen([*reconciler_command(), "sandbox", "--port", str(self.port)],
                                     stdout=self.log, stderr=self.log)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update({"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "sandbox",
                         "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_REGION": "us-east-1",
                         "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
                         "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "REDIS_AUTH_TOKEN": OLD})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.call("GET", "/_sandbox/time")
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the sandbox process did not start")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    def client(self, service: str) -> Any:
        return sandbox_client(self.endpoint, service)

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_sandbox/requests")["requests"]

    def writes(self) -> int:
        return sum(r["count"] for r in self.requests() if not r["read"])

    def refused(self) -> dict[str, int]:
        return {f"{r['service']}:{r['operation']}:{code}": n for r in self.requests() if not is_read(r["operation"])
                for code, n in r["errors"].items()}

    def counts(self) -> dict[str, int]:
        cf, ec2 = self.client("cloudfront"), self.client("ec2")
        return {
            "distributions": len(cf.list_distributions()["DistributionList"].get("Items") or []),
            "oacs": len(cf.list_origin_access_controls()["OriginAccessControlList"].get("Items") or []),
            "tables": len([t for t in self.client("dynamodb").list_tables()["TableNames"]
                           if t != "reconciler-lease"]),
            "buckets": len(self.client("s3").list_buckets()["Buckets"]),
            "caches": len(self.client("elasticache").describe_replication_groups()["ReplicationGroups"]),
            "cache security groups": len(ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": ["reconciler-app-cache"]}])["SecurityGroups"]),
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def pool() -> Iterator[list[SandboxProcess]]:
    boxes: list[SandboxProcess] = []
    try:
        for _ in range(POOL):
            boxes.append(SandboxProcess())
        yield boxes
    finally:
        for box in boxes:
            box.stop()


def _env(box: SandboxProcess, work: Path, token: str) -> dict[str, str]:
    """The sandbox's environment, with the job's own state directory (the agent's journal survives its kill) and
    the trimmed botocore models shared by every run (written once, not by a helper in each of ~150 runs)."""
    return {**box.env, "REDIS_AUTH_TOKEN": token, "RECONCILER_STATE_DIR": str(work / "state"),
            "RECONCILER_MODELS_DIR": str(work.parent / "models")}


def _run(box: SandboxProcess, cwd: Path, *args: str, token: str = OLD, timeout: float = 180
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*reconciler_command(), *args], env=_env(box, cwd, token), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _write_specs(work: Path, text: str) -> Path:
    specs = work / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "stack.yaml").write_text(text)
    return specs


def _converge(box: SandboxProcess, work: Path, scenario: Scenario, plan: bool = False) -> str:
    """Run the agent again until the stack matches the target (`apply --wait`: the same engine the daemon runs,
    carried through until a plan has nothing left to apply, and exit 0 only without a failure or a refusal);
    '' when it did, else what went wrong. `plan`: a separate `plan --detailed-exitcode` must be clean too."""
    specs = _write_specs(work, scenario.target)
    applied = _run(box, work, "apply", "--auto-approve", "--wait=120", "--no-lease", str(specs), token=scenario.token)
    if applied.returncode != 0:
        return f"apply --wait exited {applied.returncode}: {applied.stdout[-1500:]}{applied.stderr[-800:]}"
    if plan and _run(box, work, "plan", "--detailed-exitcode", str(specs), token=scenario.token).returncode != 0:
        return "plan is not clean after apply --wait"
    return ""


def _killed_run(box: SandboxProcess, work: Path, scenario: Scenario, after_writes: int) -> int:
    """The scenario's command, killed by the sandbox right after serving its `after_writes`-th write
    (0: not killed). Returns its exit code (-9 when killed)."""
    specs = _write_specs(work, scenario.target)
    args = (["run", str(specs), "--interval", "1s", "--pending-interval", "1s", "--no-lease", "--http-port", "0"]
            if scenario.daemon
            else ["apply", "--auto-approve", "--wait=120", "--no-lease", str(specs)])
    # armed before the agent starts: the shell waits for a line on stdin, then becomes the agent (same pid)
    command = " ".join(shlex.quote(a) for a in [*reconciler_command(), *args])
    proc = subprocess.Popen(["sh", "-c", f"read _ && exec {command}"], env=_env(box, work, scenario.token), cwd=work,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if after_writes:
        box.call("POST", "/_sandbox/kill", {"afterWrites": after_writes, "pid": proc.pid})
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    deadline, writes, quiet_since = time.monotonic() + 150, -1, time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if scenario.daemon and not after_writes:  # the daemon runs until stopped: once it has stopped writing
            now = box.writes()
            quiet_since = quiet_since if now == writes else time.monotonic()
            writes = now
            if writes > 0 and time.monotonic() - quiet_since > 4:
                break
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    box.call("POST", "/_sandbox/kill", {"afterWrites": 0, "pid": proc.pid})  # disarm
    return proc.returncode


def _prepare(box: SandboxProcess, work: Path, scenario: Scenario) -> None:
    box.call("POST", "/_sandbox/reset", {"time": "instant"})
    if scenario.base:
        base = _write_specs(work, scenario.base)
        made = _run(box, work, "apply", "--auto-approve", "--wait=60", "--no-lease", str(base))
        assert made.returncode == 0, made.stdout + made.stderr
    box.call("PUT", "/_sandbox/time", {"time": str(FACTOR)})
    urllib.request.urlopen(urllib.request.Request(box.endpoint + "/_sandbox/requests", method="DELETE")).close()


def _check(box: SandboxProcess, scenario: Scenario, k: int) -> list[str]:
    problems = []
    counts = box.counts()
    if {name: counts[name] for name in scenario.expected} != scenario.expected:
        problems.append(f"kill at write {k}: {counts} (expected {scenario.expected})")
    if box.refused():
        problems.append(f"kill at write {k}: writes AWS refused: {box.refused()}")
    tokens = box.call("GET", "/_sandbox/auth-tokens").get("app-cache")
    if tokens is not None and tokens != [hashlib.sha256(scenario.token.encode()).hexdigest()]:
        problems.append(f"kill at write {k}: the cache accepts {len(tokens)} token(s), not only the spec's")
    return problems


@dataclass
class Result:
    scenario: str
    k: int
    killed: bool
    problems: list[str]


def _boundary(box: SandboxProcess, tmp: Path, scenario: Scenario, k: int) -> Result:
    work = tmp / f"{SCENARIOS.index(scenario)}-{k}"
    _prepare(box, work, scenario)
    code = _killed_run(box, work, scenario, k)
    problem = _converge(box, work, scenario)
    return Result(scenario.name, k, code == -signal.SIGKILL,
                  [f"kill at write {k}: {problem}"] if problem else _check(box, scenario, k))


@pytest.mark.slow(weight=10)  # the longest test of the suite: started first
def test_killed_at_every_write_boundary_at_aws_time_converges_without_duplicates(pool, tmp_path):
    started = time.monotonic()
    boundaries: dict[str, int] = {}

    def count(box: SandboxProcess, scenario: Scenario) -> None:
        work = tmp_path / f"{SCENARIOS.index(scenario)}-count"
        _prepare(box, work, scenario)
        _killed_run(box, work, scenario, 0)
        boundaries[scenario.name] = box.writes()
        problem = _converge(box, work, scenario, plan=True)
        assert not problem and not _check(box, scenario, 0), f"{scenario.name}, not killed: {problem}"

    with ThreadPoolExecutor(POOL) as executor:
        free: list[SandboxProcess] = list(pool)

        def on_a_box(job: Callable[[SandboxProcess], Any]) -> Any:
            box = free.pop()
            try:
                return job(box)
            finally:
                free.append(box)

        list(executor.map(lambda s: on_a_box(lambda b: count(b, s)), SCENARIOS))
        jobs = [(s, k) for s in SCENARIOS for k in range(1, boundaries[s.name] + 1)]
        results: list[Result] = list(executor.map(lambda j: on_a_box(lambda b: _boundary(b, tmp_path, *j)), jobs))
    problems = [p for r in results for p in r.problems]
    killed = {s.name: sum(r.killed for r in results if r.scenario == s.name) for s in SCENARIOS}
    for s in SCENARIOS:
        print(f"crash safety at AWS time x {FACTOR}: {s.name}: {boundaries[s.name]} write boundaries, "
              f"{killed[s.name]} kills landed", file=sys.stderr)
    print(f"crash safety: {len(jobs)} boundaries in {time.monotonic() - started:.0f}s", file=sys.stderr)
    assert not problems, "\n".join(problems[:20])
    for s in SCENARIOS:
        assert boundaries[s.name] >= 3, s.name
        assert killed[s.name] >= boundaries[s.name] - 1, s.name  # the last write may end the run before the kill


BUCKET = "apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: half-made}\nspec: {tags: {team: web}}\n"


def test_an_untagged_bucket_is_finished_only_if_this_agent_was_creating_it(cli, specs, aws):
    root = specs("b.yaml", BUCKET)
    aws.client("s3").create_bucket(Bucket="half-made")  # as a kill between CreateBucket and tagging leaves it
    refused = cli("plan", "--json", str(root))
    [change] = refused.json["changes"]
    assert change["action"] == "error" and "not created by reconciler" in change["error"]  # no journal: not ours

    journal = Path(aws.env["RECONCILER_STATE_DIR"]) / "intents.json"
    journal.write_text(json.dumps({"Bucket/half-made": 1.0}))
    plan = cli("plan", "--json", str(root))
    [change] = plan.json["changes"]
    assert change["action"] == "update"
    assert {"spec.tags.managed-by", "spec.tags.reconciler:name"} <= {f["path"] for f in change["fields"]}
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert json.loads(journal.read_text()) == {}
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
