"""The end-to-end scenarios, run the way a user runs the agent (the `reconciler` CLI), against a real account
when asked with a matching `--account`, or against the sandbox (`--sandbox`, part of the test suite).

On an account it creates the example stack under a prefix nothing in the account uses yet, each resource tagged
with the run's id, carries out the multi-step changes, corrects a console user's drift, deletes everything through
tombstones, and then removes what the run made and the agent keeps by design (backups, final snapshots, the
cache's network), also after a failure: only what its journal records (scripts/acceptance_journal.py), each
checked against the record before the call. docs/acceptance.md says what it creates, what it costs and how to
clean up after a killed run (`--clean-up DIR`).

Usage: scripts/acceptance --sandbox | --account ACCOUNT_ID [--yes] [--prefix PREFIX] [--clean-up DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from acceptance_journal import RUN_TAG, Journal, Names, boto, observe, prefix_in_use, present, remove  # noqa: E402

from reconciler.aws.typical_durations import TYPICAL_DURATIONS  # noqa: E402  (AWS's typical durations, with their sources)
from reconciler.core.statedir import state_dir  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
WAIT_S = 5400  # apply --wait: the longest phase on AWS (a replica, a token rotation) takes about half an hour
# On-demand list prices in us-east-1 (USD per hour), for the estimate printed before anything is created.
PRICES = {"cache.t3.micro node": 0.017, "table with 5 RCU and 5 WCU": 5 * 0.00013 + 5 * 0.00065}


def phase_seconds(*resources: list[str]) -> float:
    """AWS's typical time for a phase: resources change side by side, each through its steps in turn."""
    return max(sum(TYPICAL_DURATIONS[s].seconds for s in steps) for steps in resources)


PHASES = {
    "create the example stack": phase_seconds(
        ["dynamodb.create", "dynamodb.backups", "dynamodb.ttl"], ["cloudfront.deploy"], ["elasticache.create"]),
    "multi-step changes (billing switch + index, a replica, AUTH ROTATE then SET, the distribution)": phase_seconds(
        ["dynamodb.billing", "dynamodb.index_create"], ["elasticache.replicas", "elasticache.auth", "elasticache.auth"],
        ["cloudfront.deploy"]),
    "a console user's drift, corrected": phase_seconds(["dynamodb.throughput", "dynamodb.throughput"]),
    "tombstone deletes": phase_seconds(["dynamodb.delete"], ["cloudfront.deploy"], ["elasticache.delete"]),
}


def estimate() -> tuple[float, float]:
    """(expected seconds, estimated USD) for the whole run on AWS."""
    seconds = sum(PHASES.values()) + 120 * len(PHASES)  # the agent's own calls and polls, per phase
    hours = seconds / 3600
    dollars = hours * (2 * PRICES["cache.t3.micro node"] + 2 * PRICES["table with 5 RCU and 5 WCU"])
    return seconds, dollars


class Run:
    """One run: a working directory with the prefixed example stack, and the CLI called on it."""

    def __init__(self, names: Names, env: dict[str, str], journal: Journal):
        self.names, self.env, self.journal = names, env, journal
        self.work = journal.path.parent
        self.specs = self.work / "specs"
        self.token = "Acc-" + secrets.token_hex(12)  # AWS's rule: letters, digits and ! & # $ ^ < > - only
        self.env["ACCEPTANCE_REDIS_TOKEN"] = self.token

    def reconciler(self, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reconciler", *args]
        try:
            done = subprocess.run(command, env=self.env, cwd=self.work, capture_output=True, text=True)
        finally:
            observe(self.journal, self.names)  # what that command made, recorded before anything else happens
        shown = " ".join(args)
        if done.returncode not in expect:
            raise Failed(f"`reconciler {shown}` exited {done.returncode} (expected {expect}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-2000:]}")
        print(f"    reconciler {shown}: exit {done.returncode}", flush=True)
        return done

    def write_example(self) -> None:
        """The repository's example stack, every name prefixed (a name that is not found fails loudly)."""
        n = self.names
        shutil.copytree(ROOT / "site", self.work / "site")
        self.specs.mkdir()
        edits = {
            "tables.yaml": [("name: Users", f"name: {n.users}"), ("name: Products", f"name: {n.products}")],
            "site.yaml": [("name: example-site-bucket", f"name: {n.bucket}"), ("name: website", f"name: {n.website}"),
                          ('bucket: "example-site-bucket', f'bucket: "{n.bucket}'),
                          ("invalidate: website", f"invalidate: {n.website}")],
            "cache.yaml": [("name: app-cache", f"name: {n.cache}"), ("replicas: 1", "replicas: 0"),
                           ("securityGroupName: bastion", f"securityGroupName: {n.bastion}"),
                           ("fromEnv: REDIS_AUTH_TOKEN", "fromEnv: ACCEPTANCE_REDIS_TOKEN")],
        }
        tagged = ("tags: {team: web, app: example-site}",
                  f"tags: {{team: web, app: example-site, {RUN_TAG}: {self.journal.run_id}}}")  # the run's tag
        for name, replacements in edits.items():
            text = (ROOT / "specs" / name).read_text()
            for old, new in [*replacements, tagged]:
                if old not in text:
                    raise Failed(f"specs/{name} no longer has {old!r}: update scripts/acceptance.py")
                text = text.replace(old, new)
            (self.specs / name).write_text(text)

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.specs / name
        text = path.read_text()
        if old not in text:
            raise Failed(f"{name} has no {old!r}")
        path.write_text(text.replace(old, new, 1))

    def converge(self, *options: str) -> None:
        self.reconciler("apply", "--auto-approve", f"--wait={WAIT_S}", "--no-lease", *options, str(self.specs))
        self.reconciler("plan", "--detailed-exitcode", str(self.specs))


class Failed(Exception):
    """A step did not get what it expects."""


def create_bastion(names: Names, journal: Journal) -> str:
    """A security group standing in for the bastion, in the default VPC (the stack's cache allows it), tagged with
    the run's id at creation and recorded the moment AWS answers."""
    ec2 = boto("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise Failed("this account and region have no default VPC, which the example stack uses")
    group = str(ec2.create_security_group(GroupName=names.bastion, VpcId=vpcs[0]["VpcId"],
                                          Description="reconciler acceptance run: stands in for the bastion",
                                          TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                              {"Key": RUN_TAG, "Value": journal.run_id}]}])["GroupId"])
    journal.record("security group", group, name=names.bastion)
    return group


@contextlib.contextmanager
def phase(title: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"== {title} (AWS usually takes ~{PHASES[title] / 60:.0f} min)", flush=True)
    yield
    print(f"   done in {time.monotonic() - started:.0f}s", flush=True)


def scenario(run: Run) -> None:
    n = run.names
    with phase("create the example stack"):
        run.write_example()
        create_bastion(n, run.journal)
        run.reconciler("validate", str(run.specs))
        run.reconciler("plan", "--detailed-exitcode", str(run.specs), expect=(2,))
        run.converge()
    with phase("multi-step changes (billing switch + index, a replica, AUTH ROTATE then SET, the distribution)"):
        run.edit("tables.yaml", "  billingMode: PAY_PER_REQUEST\n", "  billingMode: PROVISIONED\n"
                 "  capacity: {read: 5, write: 5}\n")
        run.edit("tables.yaml", "projection: ALL}\n", "projection: ALL}\n"
                 "    - {name: ByName, partitionKey: {name: Name, type: S}, projection: KEYS_ONLY}\n")
        run.edit("cache.yaml", "replicas: 0", "replicas: 1")
        run.edit("site.yaml", "comment: Static site", "comment: Static site (acceptance)")
        run.token = run.env["ACCEPTANCE_REDIS_TOKEN"] = "Acc-" + secrets.token_hex(12)
        run.converge()
    with phase("a console user's drift, corrected"):
        boto("dynamodb").update_table(TableName=n.products, ProvisionedThroughput={
            "ReadCapacityUnits": 7, "WriteCapacityUnits": 5})
        drift = run.reconciler("plan", "--json", str(run.specs))
        changed = [c for c in json.loads(drift.stdout)["changes"] if c["action"] != "noop"]
        if [(c["name"], [f["path"] for f in c["fields"]]) for c in changed] != [(n.products, ["spec.capacity"])]:
            raise Failed(f"the plan does not show exactly the console's drift: {changed}")
        run.converge()
    with phase("tombstone deletes"):
        for name in ("tables.yaml", "site.yaml", "cache.yaml"):
            path = run.specs / name
            path.write_text(re.sub(r"(?m)^(  name: .+)$", r"\1\n  state: absent\n  deletion: delete",
                                   path.read_text()))
        run.converge("--max-destroy", "5")  # the change budget (3 a cycle) holds a mass delete: raised, on purpose


# ---------------------------------------------------------------------- the edge


def account_of() -> str:
    return str(boto("sts").get_caller_identity()["Account"])


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/acceptance", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true", help="run against the embedded sandbox (no account)")
    where.add_argument("--account", metavar="ACCOUNT_ID",
                       help="run against this AWS account: the configured credentials must be of it")
    parser.add_argument("--yes", action="store_true", help="do not ask before creating resources on the account")
    parser.add_argument("--prefix", help="the name prefix (default: acc + 6 random hex digits + -); refused when "
                                         "anything in the account already uses it")
    parser.add_argument("--clean-up", metavar="DIR", dest="clean_up",
                        help="remove what the killed run of this directory made (its journal.jsonl), and nothing "
                             "else; with --account")
    parser.add_argument("--aws-time", default=os.environ.get("RECONCILER_SANDBOX_TIME") or "0.005",
                        help="the sandbox's AWS time (default 0.005)")
    parser.add_argument("--fail-after", choices=["create"], help=argparse.SUPPRESS)  # tests the removal path
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.clean_up:
        return clean_up(Path(args.clean_up), args)
    prefix = args.prefix or f"acc{secrets.token_hex(3)}-"
    if not re.fullmatch(r"[a-z][a-z0-9]{2,12}-", prefix):
        print(f"--prefix {prefix!r}: a lowercase letter, then 2-12 lowercase letters or digits, then '-'",
              file=sys.stderr)
        return EXIT_REFUSED
    names = Names(prefix)
    sandbox = None
    if args.sandbox:
        os.environ["RECONCILER_SANDBOX_TIME"] = args.aws_time
        from reconciler.sandbox import enter_sandbox

        sandbox = enter_sandbox(os.environ)
        print(f"Against the sandbox ({sandbox.endpoint}, AWS's time x {args.aws_time}): no account is touched.")
    else:
        refused = _account_refusal(args.account, args.yes, names)
        if refused is not None:
            return refused
    used = prefix_in_use(names)
    if used:
        print(f"refusing: the prefix {prefix!r} is already used by {', '.join(used)}; nothing was created "
              "(choose another --prefix)", file=sys.stderr)
        if sandbox is not None:
            sandbox.stop()
        return EXIT_REFUSED
    outcome, left = _run(names, args)
    if sandbox is not None:
        refused_writes = _refused(sandbox.endpoint)
        if refused_writes and outcome == EXIT_OK:
            outcome = EXIT_FAILED
            print(f"FAILED: writes the sandbox refused: {refused_writes}", file=sys.stderr)
        sandbox.stop()
    return outcome if not left else EXIT_FAILED


def _account_refusal(account: str | None, yes: bool, names: Names | None) -> int | None:
    """Against a real account: only the one named; a run (`names`) says first what it costs and, on a terminal,
    asks. None: go on; else the exit code."""
    if not account:
        print("refusing to run against a real account without --account ACCOUNT_ID (the account the "
              "credentials must be of), or use --sandbox", file=sys.stderr)
        return EXIT_REFUSED
    try:
        reached = account_of()
    except Exception as exc:
        print(f"cannot tell which account the credentials are of (STS GetCallerIdentity: {exc})", file=sys.stderr)
        return EXIT_REFUSED
    if reached != account:
        print(f"refusing: the credentials are of account {reached}, not {account}; nothing was created",
              file=sys.stderr)
        return EXIT_REFUSED
    if names is None:  # --clean-up: nothing is created, nothing to estimate
        return None
    seconds, dollars = estimate()
    print(f"Account {reached}, region {os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION')}. "
          f"This run creates, under the prefix {names.prefix!r}:")
    for line in (f"  DynamoDB tables {names.users} and {names.products}",
                 f"  an S3 bucket {names.bucket} and a CloudFront distribution (spec {names.website}) with an "
                 "Origin Access Control", f"  an ElastiCache Redis group {names.cache} (cache.t3.micro; one "
                 "replica for a while), its security group and subnet group",
                 f"  a security group {names.bastion} standing in for the bastion"):
        print(line)
    print(f"It takes about {seconds / 60:.0f} minutes (AWS's typical times) and costs about ${dollars:.2f} "
          "(on-demand prices, us-east-1), then removes everything it created, and nothing else.")
    if not yes:
        if not sys.stdin.isatty():
            print("refusing: pass --yes to run without a terminal to confirm on", file=sys.stderr)
            return EXIT_REFUSED
        if input("Type the account id to go on: ").strip() != reached:
            print("Cancelled; nothing was created.")
            return EXIT_REFUSED
    return None


def _run(names: Names, args: argparse.Namespace) -> tuple[int, list[str]]:
    """The scenario in a directory of its own (its journal, its specs), then the removal of what it made."""
    run_id = secrets.token_hex(6)
    directory = state_dir() / "acceptance" / f"{names.prefix}{run_id}"
    journal = Journal(directory / "journal.jsonl", run_id, names.prefix)
    print(f"Run {run_id}: every resource it makes is tagged {RUN_TAG}={run_id} and recorded in {journal.path} "
          f"(after a killed run: scripts/acceptance --clean-up {directory} --account ID)", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    outcome = EXIT_OK
    run = Run(names, env, journal)
    try:
        scenario_with_failure(run, args.fail_after)
    except Exception as exc:
        outcome = EXIT_FAILED
        print(f"FAILED: {exc}", file=sys.stderr)
    finally:
        left = _remove_recorded(journal, names, wait_s=3600 if not args.sandbox else 120)
    if not left:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"acceptance {'passed' if outcome == EXIT_OK and not left else 'failed'} in "
          f"{time.monotonic() - started:.0f}s")
    return outcome, left


def _remove_recorded(journal: Journal, names: Names, wait_s: float) -> list[str]:
    observe(journal, names)
    there = [f"{e.kind} {e.ident}" for e in present(journal)]
    if there:  # by design (a table's backup, a cache's final snapshot, its network), or after a failure
        print("removing what the run made and leaves: " + ", ".join(there), flush=True)
    left = remove(journal, wait_s)
    print(f"left behind: {', '.join(left) if left else 'none'}")
    if left:
        print(f"remove it with: scripts/acceptance --clean-up {journal.path.parent} --account ID "
              "(docs/acceptance.md, 'If a run is killed')", file=sys.stderr)
    return left


def clean_up(directory: Path, args: argparse.Namespace) -> int:
    """After a killed run: remove what its journal records (and what carries its tag), nothing else."""
    path = directory / "journal.jsonl"
    if not path.is_file():
        print(f"refusing: {path} does not exist (give the directory a run printed)", file=sys.stderr)
        return EXIT_REFUSED
    if args.sandbox:
        print("refusing: a sandbox run's resources are gone with its sandbox; --clean-up is for an account",
              file=sys.stderr)
        return EXIT_REFUSED
    refused = _account_refusal(args.account, True, None)
    if refused is not None:
        return refused
    journal = Journal(path)
    left = _remove_recorded(journal, Names(journal.prefix), wait_s=3600)
    if not left:
        shutil.rmtree(directory, ignore_errors=True)
    return EXIT_FAILED if left else EXIT_OK


def scenario_with_failure(run: Run, fail_after: str | None) -> None:
    if fail_after == "create":
        original = run.converge

        def converge_then_fail(*options: str) -> None:
            original(*options)
            raise Failed("a failure injected after the stack was created (--fail-after create)")

        run.converge = converge_then_fail  # type: ignore[method-assign]
    scenario(run)


def _refused(endpoint: str) -> dict[str, int]:
    import urllib.request

    from reconciler.sandbox import is_read

    with urllib.request.urlopen(endpoint + "/_sandbox/requests") as answer:
        rows = json.load(answer)["requests"]
    return {f"{r['service']}:{r['operation']}:{c}": n for r in rows if not is_read(r["operation"])
            for c, n in r["errors"].items()}


if __name__ == "__main__":
    sys.exit(main())
