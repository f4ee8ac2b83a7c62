"""`./scripts/acceptance`: the scenarios a user runs on a real account, run here against the sandbox as that account
(the path a real account takes: `--account`) and as its own embedded sandbox; its refusal to touch an account that
is not the one named or a prefix something already uses; and its clean-up, which removes what the run made and
nothing else, whatever shares its prefix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import ROOT, lookup_events

pytestmark = pytest.mark.slow
ACCOUNT = "123456789012"  # the sandbox's


def acceptance(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / "acceptance"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def acceptance_meanwhile(*args: str, env: dict[str, str], meanwhile: Callable[[], None],
                         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run it, and call `meanwhile` once it has checked its prefix and begun (its `Run ...` line): someone else
    making resources under the same prefix while the run goes on."""
    proc = subprocess.Popen([str(ROOT / "scripts" / "acceptance"), *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: list[str] = []
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    for line in proc.stdout:  # type: ignore[union-attr]
        out.append(line)
        if line.startswith("Run "):
            meanwhile()
    proc.wait(timeout=timeout)
    drain.join(10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(out), "".join(err))


class Stranger:
    """Someone else in the account (IAM user `bob`) with resources that share the run's prefix."""

    def __init__(self, aws: Any, prefix: str):
        iam = aws.client("iam")
        iam.create_user(UserName="bob")
        key = iam.create_access_key(UserName="bob")["AccessKey"]
        self.kw = dict(endpoint_url=aws.sandbox.endpoint, region_name="us-east-1",
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        self.prefix = prefix
        self.table, self.bucket, self.group, self.cache = (f"{prefix}Orders", f"{prefix}customer-data",
                                                           f"{prefix}bastion-old", f"{prefix}sessions")
        self.backup_arn = ""

    def client(self, service: str) -> Any:
        return boto3.client(service, **self.kw)

    def make(self) -> None:
        ddb, s3, ec2, ec = self.client("dynamodb"), self.client("s3"), self.client("ec2"), self.client("elasticache")
        ddb.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST", DeletionProtectionEnabled=True,
                         KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])
        s3.create_bucket(Bucket=self.bucket)
        s3.put_object(Bucket=self.bucket, Key="invoices/2026-11.csv", Body=b"customer,amount\nacme,12.50\n")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        ec2.create_security_group(GroupName=self.group, Description="someone else's", VpcId=vpc)
        ec.create_replication_group(ReplicationGroupId=self.cache, ReplicationGroupDescription="someone else's",
                                    Engine="redis", CacheNodeType="cache.t3.micro", NumCacheClusters=1)
        deadline = time.monotonic() + 60
        while ddb.describe_table(TableName=self.table)["Table"]["TableStatus"] != "ACTIVE":
            assert time.monotonic() < deadline, "the stranger's table never became ACTIVE"
            time.sleep(0.1)
        ddb.put_item(TableName=self.table, Item={"Id": {"S": "order-1"}, "Total": {"N": "12.50"}})
        self.backup_arn = ddb.create_backup(TableName=self.table, BackupName=f"{self.prefix}Orders-keep")[
            "BackupDetails"]["BackupArn"]

    def assert_untouched(self, aws: Any) -> None:
        ddb, s3, ec2, ec = (aws.client("dynamodb"), aws.client("s3"), aws.client("ec2"), aws.client("elasticache"))
        table = ddb.describe_table(TableName=self.table)["Table"]
        assert table["DeletionProtectionEnabled"] is True
        assert ddb.get_item(TableName=self.table, Key={"Id": {"S": "order-1"}})["Item"]["Total"] == {"N": "12.50"}
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket)["Contents"]] == ["invoices/2026-11.csv"]
        assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [self.group]}])["SecurityGroups"]
        assert ec.describe_replication_groups(ReplicationGroupId=self.cache)["ReplicationGroups"][0]["Status"] in (
            "creating", "available")
        assert ddb.describe_backup(BackupArn=self.backup_arn)["BackupDescription"]["BackupDetails"][
            "BackupStatus"] == "AVAILABLE"
        # CloudTrail's history (the sandbox's record of every write it served): bob's writes only
        trail = boto3.client("cloudtrail", endpoint_url=aws.sandbox.endpoint, region_name="us-east-1",
                             aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                             config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        for name in (self.table, self.bucket, self.group, self.cache):
            events = _lookup(trail, name)
            assert events, f"no write to {name} at all: the check could not fail"
            assert {e.get("Username") for e in events} == {"bob"}, (name, [(e["EventName"], e.get("Username"))
                                                                            for e in events])


def _lookup(trail: Any, name: str) -> list[dict[str, Any]]:
    """LookupEvents for one resource name, kept to AWS's two lookups a second."""
    return lookup_events(trail, LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": name}])["Events"]


def test_a_run_removes_what_it_made_and_nothing_that_shares_its_prefix(aws):
    """A successful run on an "account" (the sandbox, through --account) while someone else makes resources
    under the same prefix: the run's own are gone afterwards, the others all there, with no write of the run's."""
    aws.set_time(0.005)
    stranger = Stranger(aws, "prodx-")
    done = acceptance_meanwhile("--account", ACCOUNT, "--yes", "--prefix", "prodx-", env=aws.env,
                                meanwhile=stranger.make)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    phases = [line for line in done.stdout.splitlines() if line.startswith("== ")]
    assert [p.split(" (")[0] for p in phases] == [
        "== create the example stack", "== multi-step changes", "== a console user's drift, corrected",
        "== tombstone deletes"]
    assert "left behind: none" in done.stdout and "acceptance passed" in done.stdout
    removed = next(line for line in done.stdout.splitlines() if line.startswith("removing what the run made"))
    assert "table backup" in removed and "cache snapshot" in removed  # what deletes keep by design
    assert "prodx-Orders" not in removed and "prodx-customer-data" not in removed
    stranger.assert_untouched(aws)
    assert not [t for t in aws.client("dynamodb").list_tables()["TableNames"] if t in ("prodx-Users",
                                                                                         "prodx-Products")]


def test_after_a_failure_too_and_a_used_prefix_is_refused_before_anything(aws, tmp_path):
    aws.set_time(0.005)
    stranger = Stranger(aws, "prody-")
    env = {**aws.env, "RECONCILER_STATE_DIR": str(tmp_path / "state")}
    done = acceptance_meanwhile("--account", ACCOUNT, "--yes", "--prefix", "prody-", "--fail-after", "create",
                                env=env, meanwhile=stranger.make)
    assert done.returncode == 1
    assert "a failure injected after the stack was created" in done.stderr
    removed = next(line for line in done.stdout.splitlines() if line.startswith("removing what the run made"))
    for kind in ("table arn:aws:dynamodb:us-east-1:123456789012:table/prody-Users", "bucket prody-site",
                 "distribution", "cache prody-cache"):
        assert kind in removed
    assert "left behind: none" in done.stdout
    stranger.assert_untouched(aws)
    assert not list((tmp_path / "state" / "acceptance").iterdir())  # a run that left nothing keeps no journal

    aws.reset_requests()
    again = acceptance("--account", ACCOUNT, "--yes", "--prefix", "prody-", env=env)
    assert again.returncode == 2
    for used in ("table prody-Orders", "bucket prody-customer-data", "cache prody-sessions",
                 "table backup prody-Orders-keep", "security group prody-bastion-old"):
        assert used in again.stderr
    assert "nothing was created" in again.stderr
    assert aws.writes() == []  # refused having only read


def test_a_killed_run_is_cleaned_up_from_its_journal_only(aws, tmp_path):
    """A run killed half-way leaves its journal; `--clean-up DIR` removes what it records, and what carries the
    run's tag, and nothing else (a foreign table whose name the run would have used is left alone)."""
    aws.set_time(0.005)
    env = {**aws.env, "RECONCILER_STATE_DIR": str(tmp_path / "state")}
    errors = tmp_path / "run.err"
    proc = subprocess.Popen([str(ROOT / "scripts" / "acceptance"), "--account", ACCOUNT, "--yes", "--prefix",
                             "prodz-"], env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=errors.open("w"), start_new_session=True)
    said = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            said.append(line)
            if line.startswith("== multi-step changes"):  # the stack exists, as the journal says
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and the `reconciler` it may be running: killed as by an OOM
        proc.wait()
    assert said and said[-1].startswith("== multi-step changes"), "".join(said) + errors.read_text()[-3000:]
    [directory] = (tmp_path / "state" / "acceptance").iterdir()
    recorded = [json.loads(line) for line in (directory / "journal.jsonl").read_text().splitlines()][1:]
    assert {r["kind"] for r in recorded} >= {"table", "bucket", "distribution", "cache", "security group"}
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName="prodz-Audit", BillingMode="PAY_PER_REQUEST", DeletionProtectionEnabled=True,
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])
    refused = acceptance("--clean-up", str(directory), env=env)
    assert refused.returncode == 2 and "without --account" in refused.stderr  # an account is named, always
    cleaned = acceptance("--clean-up", str(directory), "--account", ACCOUNT, env=env)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert "left behind: none" in cleaned.stdout
    assert ddb.list_tables()["TableNames"] == ["prodz-Audit"]
    assert ddb.describe_table(TableName="prodz-Audit")["Table"]["DeletionProtectionEnabled"] is True
    assert not aws.client("s3").list_buckets()["Buckets"]
    assert not directory.exists()


def test_against_its_own_sandbox_everything_is_removed_after_a_failure(aws):
    done = acceptance("--sandbox", "--fail-after", "create", env=aws.env)
    assert done.returncode == 1
    assert "a failure injected after the stack was created" in done.stderr
    removed = next(line for line in done.stdout.splitlines() if line.startswith("removing what the run made"))
    for kind in ("table", "bucket", "distribution", "cache"):
        assert f"{kind} " in removed
    assert "left behind: none" in done.stdout


def test_a_real_account_needs_its_own_id(aws):
    """Pointed at an "account" (the sandbox, which is 123456789012): without --account, or with another id, it
    refuses before it creates anything, having asked STS who the credentials are at most."""
    refused = acceptance(env=aws.env, timeout=120)
    assert refused.returncode == 2 and "without --account" in refused.stderr
    assert aws.requests() == []
    wrong = acceptance("--account", "111122223333", "--yes", env=aws.env, timeout=120)
    assert wrong.returncode == 2
    assert "the credentials are of account 123456789012, not 111122223333; nothing was created" in wrong.stderr
    assert [(r["service"], r["operation"]) for r in aws.requests()] == [("sts", "GetCallerIdentity")]
