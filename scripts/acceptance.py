"""The end-to-end scenarios, run the way a user runs the agent (the `reconciler` CLI), against a real account
when asked with a matching `--account`, or against the sandbox (`--sandbox`, part of the test suite).

On an account it creates the example stack under a unique name prefix, carries out the multi-step changes,
corrects a console user's drift, deletes everything through tombstones, and then removes whatever is left
with that prefix (also after a failure), and says what, if anything, it could not remove. docs/acceptance.md
says what it creates, what it costs and how to clean up by hand.

Usage: scripts/acceptance --sandbox | --account ACCOUNT_ID [--yes] [--prefix PREFIX]
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
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.typical import DURATIONS  # noqa: E402  (AWS's typical durations, with their sources)

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
WAIT_S = 5400  # apply --wait: the longest phase on AWS (a replica, a token rotation) takes about half an hour
# On-demand list prices in us-east-1 (USD per hour), for the estimate printed before anything is created.
PRICES = {"cache.t3.micro node": 0.017, "table with 5 RCU and 5 WCU": 5 * 0.00013 + 5 * 0.00065}


@dataclass
class Names:
    """Every name the run uses: the example stack's, each with the run's prefix."""

    prefix: str

    def __getattr__(self, name: str) -> str:
        base = {"users": "Users", "products": "Products", "bucket": "site", "website": "website",
                "cache": "cache", "bastion": "bastion"}[name]
        return f"{self.prefix}{base}"


def phase_seconds(*resources: list[str]) -> float:
    """AWS's typical time for a phase: resources change side by side, each through its steps in turn."""
    return max(sum(DURATIONS[s].seconds for s in steps) for steps in resources)


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

    def __init__(self, names: Names, env: dict[str, str], workdir: Path):
        self.names, self.env, self.work = names, env, workdir
        self.specs = workdir / "specs"
        self.token = "Acc-" + secrets.token_hex(12)  # AWS's rule: letters, digits and ! & # $ ^ < > - only
        self.env["ACCEPTANCE_REDIS_TOKEN"] = self.token

    def reconciler(self, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reconciler", *args]
        done = subprocess.run(command, env=self.env, cwd=self.work, capture_output=True, text=True)
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
        for name, replacements in edits.items():
            text = (ROOT / "specs" / name).read_text()
            for old, new in replacements:
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


def boto(service: str) -> Any:
    import boto3

    return boto3.client(service)


def create_bastion(names: Names) -> str:
    """A security group standing in for the bastion, in the default VPC (the stack's cache allows it)."""
    ec2 = boto("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise Failed("this account and region have no default VPC, which the example stack uses")
    return str(ec2.create_security_group(GroupName=names.bastion, VpcId=vpcs[0]["VpcId"],
                                         Description="reconciler acceptance run: stands in for the bastion",
                                         TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                             {"Key": "reconciler:acceptance", "Value": names.prefix}]}])["GroupId"])


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
        create_bastion(n)
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


# ---------------------------------------------------------------------- removal of what is left


def leftovers(names: Names) -> list[tuple[str, str]]:
    """(kind, id) of everything with the run's prefix that still exists: what the run would leave behind,
    backups and final snapshots included."""
    ddb, s3, cf, ec, ec2 = boto("dynamodb"), boto("s3"), boto("cloudfront"), boto("elasticache"), boto("ec2")
    found = [("table", t) for t in ddb.list_tables()["TableNames"] if t.startswith(names.prefix)]
    found += [("table backup", b["BackupArn"]) for b in ddb.list_backups()["BackupSummaries"]
              if b["TableName"].startswith(names.prefix)]
    found += [("bucket", b["Name"]) for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(names.prefix)]
    found += [("distribution", d["Id"]) for d in cf.list_distributions()["DistributionList"].get("Items") or []
              if _tagged(cf, d["ARN"], names.website)]
    found += [("origin access control", o["Id"]) for o in
              cf.list_origin_access_controls()["OriginAccessControlList"].get("Items") or []
              if o["Name"] == f"reconciler-{names.website}"]
    found += [("cache", g["ReplicationGroupId"]) for g in ec.describe_replication_groups()["ReplicationGroups"]
              if g["ReplicationGroupId"].startswith(names.prefix)]
    found += [("cache snapshot", n["SnapshotName"]) for n in ec.describe_snapshots()["Snapshots"]
              if n["SnapshotName"].startswith(names.prefix)]
    found += [("cache subnet group", g["CacheSubnetGroupName"]) for g in
              ec.describe_cache_subnet_groups()["CacheSubnetGroups"]
              if g["CacheSubnetGroupName"] == f"reconciler-{names.cache}"]
    found += [("security group", g["GroupId"]) for g in ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [names.bastion, f"reconciler-{names.cache}"]}])["SecurityGroups"]]
    return found


def _tagged(cf: Any, arn: str, name: str) -> bool:
    tags = {t["Key"]: t["Value"] for t in cf.list_tags_for_resource(Resource=arn)["Tags"].get("Items") or []}
    return tags.get("reconciler:name") == name


def remove_leftovers(names: Names, wait_s: float) -> list[str]:
    """Delete what the run left (after a failure, the agent did not get to its tombstones; backups and final
    snapshots it leaves by design), waiting as long as AWS takes; returns what is still there, in words."""
    deadline = time.monotonic() + wait_s
    while True:
        left = leftovers(names)
        if not left or time.monotonic() > deadline:
            return [f"{kind} {ident}" for kind, ident in left]
        for kind, ident in left:
            with contextlib.suppress(Exception):  # in use, or still being deleted: tried again next round
                REMOVERS[kind](ident)
        time.sleep(min(15.0, max(1.0, wait_s / 200)))


def _remove_table(name: str) -> None:
    ddb = boto("dynamodb")
    if ddb.describe_table(TableName=name)["Table"].get("DeletionProtectionEnabled"):
        ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    ddb.delete_table(TableName=name)


def _remove_bucket(name: str) -> None:
    s3 = boto("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)


def _remove_distribution(ident: str) -> None:
    """Disable it; once that is deployed (a later round), delete it."""
    cf = boto("cloudfront")
    answer = cf.get_distribution_config(Id=ident)
    config = answer["DistributionConfig"]
    if config["Enabled"]:
        cf.update_distribution(Id=ident, IfMatch=answer["ETag"], DistributionConfig={**config, "Enabled": False})
    elif cf.get_distribution(Id=ident)["Distribution"]["Status"] == "Deployed":
        cf.delete_distribution(Id=ident, IfMatch=answer["ETag"])


def _remove_oac(ident: str) -> None:
    cf = boto("cloudfront")
    cf.delete_origin_access_control(Id=ident, IfMatch=cf.get_origin_access_control(Id=ident)["ETag"])


REMOVERS: dict[str, Callable[[str], None]] = {
    "table": _remove_table,
    "table backup": lambda arn: boto("dynamodb").delete_backup(BackupArn=arn),
    "bucket": _remove_bucket,
    "distribution": _remove_distribution,
    "origin access control": _remove_oac,
    "cache": lambda ident: boto("elasticache").delete_replication_group(ReplicationGroupId=ident),
    "cache snapshot": lambda name: boto("elasticache").delete_snapshot(SnapshotName=name),
    "cache subnet group": lambda name: boto("elasticache").delete_cache_subnet_group(CacheSubnetGroupName=name),
    "security group": lambda ident: boto("ec2").delete_security_group(GroupId=ident),
}


# ---------------------------------------------------------------------- the edge


def account_of() -> str:
    return str(boto("sts").get_caller_identity()["Account"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/acceptance", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true", help="run against the embedded sandbox (no account)")
    where.add_argument("--account", metavar="ACCOUNT_ID",
                       help="run against this AWS account: the configured credentials must be of it")
    parser.add_argument("--yes", action="store_true", help="do not ask before creating resources on the account")
    parser.add_argument("--prefix", help="the name prefix (default: acc + 6 random hex digits + -)")
    parser.add_argument("--aws-time", default=os.environ.get("RECONCILER_SANDBOX_TIME") or "0.005",
                        help="the sandbox's AWS time (default 0.005)")
    parser.add_argument("--fail-after", choices=["create"], help=argparse.SUPPRESS)  # tests the removal path
    args = parser.parse_args(argv)
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
        if not args.account:
            print("refusing to run against a real account without --account ACCOUNT_ID (the account the "
                  "credentials must be of), or use --sandbox", file=sys.stderr)
            return EXIT_REFUSED
        try:
            reached = account_of()
        except Exception as exc:
            print(f"cannot tell which account the credentials are of (STS GetCallerIdentity: {exc})",
                  file=sys.stderr)
            return EXIT_REFUSED
        if reached != args.account:
            print(f"refusing: the credentials are of account {reached}, not {args.account}; nothing was created",
                  file=sys.stderr)
            return EXIT_REFUSED
        seconds, dollars = estimate()
        print(f"Account {reached}, region {os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION')}. "
              f"This run creates, under the prefix {prefix!r}:")
        for line in (f"  DynamoDB tables {names.users} and {names.products}",
                     f"  an S3 bucket {names.bucket} and a CloudFront distribution (spec {names.website}) with an "
                     "Origin Access Control", f"  an ElastiCache Redis group {names.cache} (cache.t3.micro; one "
                     "replica for a while), its security group and subnet group",
                     f"  a security group {names.bastion} standing in for the bastion"):
            print(line)
        print(f"It takes about {seconds / 60:.0f} minutes (AWS's typical times) and costs about ${dollars:.2f} "
              "(on-demand prices, us-east-1), then removes everything it created.")
        if not args.yes:
            if not sys.stdin.isatty():
                print("refusing: pass --yes to run without a terminal to confirm on", file=sys.stderr)
                return EXIT_REFUSED
            if input("Type the account id to go on: ").strip() != reached:
                print("Cancelled; nothing was created.")
                return EXIT_REFUSED
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    outcome, failure = EXIT_OK, None
    with tempfile.TemporaryDirectory(prefix="reconciler-acceptance-") as workdir:
        run = Run(names, env, Path(workdir))
        try:
            scenario_with_failure(run, args.fail_after)
        except Exception as exc:
            outcome, failure = EXIT_FAILED, exc
            print(f"FAILED: {exc}", file=sys.stderr)
        finally:
            found = leftovers(names)
            if found:  # by design (a table's backup, a cache's final snapshot, its network), or after a failure
                print("removing what the run leaves: " + ", ".join(f"{kind} {ident}" for kind, ident in found))
            left = remove_leftovers(names, wait_s=3600 if sandbox is None else 120)
    if sandbox is not None:
        refused = _refused(sandbox.endpoint)
        if refused and outcome == EXIT_OK:
            outcome, failure = EXIT_FAILED, Failed(f"writes the sandbox refused: {refused}")
            print(f"FAILED: {failure}", file=sys.stderr)
        sandbox.stop()
    print(f"left behind: {', '.join(left) if left else 'none'}")
    if left:
        print("remove it by hand: docs/acceptance.md, 'If a run is killed'", file=sys.stderr)
        outcome = EXIT_FAILED
    print(f"acceptance {'passed' if outcome == EXIT_OK else 'failed'} in {time.monotonic() - started:.0f}s")
    return outcome


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
