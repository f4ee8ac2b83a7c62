"""What an acceptance run made, and nothing else: the journal its clean-up goes by (scripts/acceptance.py).

Every resource of the run carries the run's tag (`reconciler-acceptance: <run id>`, in each spec's tags, and on
the bastion stand-in the run makes itself). After each step the run looks for what carries that tag, and for what
only exists because of it (a table's backup, a cache's final snapshot, subnet group and security group, the
distribution's Origin Access Control), and appends each as it first appears to `journal.jsonl` in its directory,
with the identity AWS gave it (ARN, id, creation time). The clean-up deletes only journal entries, each read again
and compared with the record (the ARN or id, the creation time, the run's tag) right before its call; anything
that no longer matches is left alone and said. Before anything is created, a prefix that any existing resource
already uses is refused, naming them.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUN_TAG = "reconciler-acceptance"  # the run's tag key; its value is the run id


def boto(service: str) -> Any:
    import boto3

    return boto3.client(service)


@dataclass(frozen=True)
class Names:
    """Every name the run uses: the example stack's, each with the run's prefix."""

    prefix: str

    @property
    def tables(self) -> list[str]:
        return [f"{self.prefix}Users", f"{self.prefix}Products"]

    def __getattr__(self, name: str) -> str:
        base = {"users": "Users", "products": "Products", "bucket": "site", "website": "website",
                "cache": "cache", "bastion": "bastion"}[name]
        return f"{self.prefix}{base}"


@dataclass(frozen=True)
class Entry:
    """One resource the run made: its kind, its id (name, ARN or AWS id) and what identifies it beyond the name."""

    kind: str
    ident: str
    identity: dict[str, str] = field(default_factory=dict)


class Journal:
    """The run's record, a JSON line per resource, appended (and flushed to disk) as each is found."""

    def __init__(self, path: Path, run_id: str = "", prefix: str = ""):
        self.path = path
        self.run_id, self.prefix = run_id, prefix
        self.entries: list[Entry] = []
        if path.exists():
            self._load()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"run": run_id, "prefix": prefix})

    def _load(self) -> None:
        for line in self.path.read_text().splitlines():
            record = json.loads(line)
            if "run" in record:
                self.run_id, self.prefix = record["run"], record["prefix"]
            else:
                self.entries.append(Entry(record["kind"], record["ident"], record.get("identity") or {}))

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(record, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def has(self, kind: str, ident: str) -> bool:
        return any(e.kind == kind and e.ident == ident for e in self.entries)

    def record(self, kind: str, ident: str, **identity: str) -> None:
        """Write down a resource the run made (once)."""
        if self.has(kind, ident):
            return
        entry = Entry(kind, ident, {k: str(v) for k, v in identity.items() if v is not None})
        self._append(asdict(entry))
        self.entries.append(entry)

    def of(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]


# ---------------------------------------------------------------------- before: a prefix nobody uses


def prefix_in_use(names: Names) -> list[str]:
    """Everything in the account and Region whose name carries the prefix (or the agent's `reconciler-<prefix>`
    names of it): the run refuses such a prefix before it creates anything."""
    ddb, s3, cf, ec, ec2 = boto("dynamodb"), boto("s3"), boto("cloudfront"), boto("elasticache"), boto("ec2")
    p, agents = names.prefix, f"reconciler-{names.prefix}"
    found = [f"table {t}" for page in ddb.get_paginator("list_tables").paginate() for t in page["TableNames"]
             if t.startswith(p)]
    found += [f"table backup {b['BackupName']}" for b in _backups(ddb) if b["TableName"].startswith(p)]
    found += [f"bucket {b['Name']}" for b in s3.list_buckets().get("Buckets", []) if b["Name"].startswith(p)]
    found += [f"distribution {d['Id']}" for d in _distributions(cf)
              if _cf_tags(cf, d["ARN"]).get("reconciler:name", "").startswith(p)]
    found += [f"origin access control {o['Name']}" for o in _oacs(cf) if o["Name"].startswith(agents)]
    found += [f"cache {g['ReplicationGroupId']}" for g in _pages(ec, "describe_replication_groups",
                                                                  "ReplicationGroups")
              if g["ReplicationGroupId"].startswith(p)]
    found += [f"cache snapshot {s['SnapshotName']}" for s in _pages(ec, "describe_snapshots", "Snapshots")
              if s["SnapshotName"].startswith(p)]
    found += [f"cache subnet group {g['CacheSubnetGroupName']}" for g in
              _pages(ec, "describe_cache_subnet_groups", "CacheSubnetGroups")
              if g["CacheSubnetGroupName"].startswith((p, agents))]
    found += [f"security group {g['GroupName']} ({g['GroupId']})" for g in _pages(
        ec2, "describe_security_groups", "SecurityGroups", Filters=[{"Name": "group-name", "Values": [
            f"{p}*", f"{agents}*"]}])]
    return found


# ---------------------------------------------------------------------- during: what the run made, as it appears


def observe(journal: Journal, names: Names) -> None:
    """Record every resource of the run that exists now and is not in the journal yet."""
    for finder in (_tables, _bucket, _distributions_made, _cache, _bastion):
        finder(journal, names)


def _tables(journal: Journal, names: Names) -> None:
    ddb = boto("dynamodb")
    for name in names.tables:
        try:
            table = ddb.describe_table(TableName=name)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            table = None
        if table is not None and _ddb_tags(ddb, table["TableArn"]).get(RUN_TAG) == journal.run_id:
            journal.record("table", table["TableArn"], name=name, created=_iso(table.get("CreationDateTime")),
                           table_id=table.get("TableId"))
    for entry in journal.of("table"):
        for backup in _backups(ddb):
            if backup.get("TableArn") == entry.ident and _backup_of(backup, entry):
                journal.record("table backup", backup["BackupArn"], table=entry.ident)


def _backup_of(backup: dict[str, Any], table: Entry) -> bool:
    """A backup of the table the run made, not of one made under its name before or after it: the same table id
    where AWS gives one, else taken while the run's table existed (after its creation)."""
    if table.identity.get("table_id") and backup.get("TableId"):
        return backup["TableId"] == table.identity["table_id"]
    made = table.identity.get("created")
    return made is not None and _iso(backup.get("BackupCreationDateTime")) >= made


def _bucket(journal: Journal, names: Names) -> None:
    s3 = boto("s3")
    listed = {b["Name"]: b for b in s3.list_buckets().get("Buckets", [])}
    if names.bucket in listed and _s3_tags(s3, names.bucket).get(RUN_TAG) == journal.run_id:
        journal.record("bucket", names.bucket, created=_iso(listed[names.bucket].get("CreationDate")))


def _distributions_made(journal: Journal, names: Names) -> None:
    cf = boto("cloudfront")
    for summary in _distributions(cf):
        tags = _cf_tags(cf, summary["ARN"])
        if tags.get(RUN_TAG) != journal.run_id:
            continue
        journal.record("distribution", summary["Id"], arn=summary["ARN"])
        oac_id, _, oac_name = tags.get("reconciler:oac", "").partition(":")  # the agent records its OAC there
        if oac_id and oac_name == f"reconciler-{names.website}":
            journal.record("origin access control", oac_id, name=oac_name)


def _cache(journal: Journal, names: Names) -> None:
    ec, ec2 = boto("elasticache"), boto("ec2")
    try:
        group = ec.describe_replication_groups(ReplicationGroupId=names.cache)["ReplicationGroups"][0]
    except ec.exceptions.ReplicationGroupNotFoundFault:
        group = None
    if group is not None and _ec_tags(ec, group["ARN"]).get(RUN_TAG) == journal.run_id:
        journal.record("cache", names.cache, arn=group["ARN"], created=_iso(group.get("ReplicationGroupCreateTime")))
        for member in group.get("MemberClusters", []):
            with contextlib.suppress(ec.exceptions.CacheClusterNotFoundFault):
                cluster = ec.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]
                _cache_network(journal, names, ec, ec2, cluster)
    if journal.has("cache", names.cache):
        for snapshot in _pages(ec, "describe_snapshots", "Snapshots"):  # its group may be gone: all, filtered here
            if snapshot.get("ReplicationGroupId") == names.cache and \
                    snapshot["SnapshotName"].startswith(f"{names.cache}-final-"):  # the agent's final snapshot
                journal.record("cache snapshot", snapshot["SnapshotName"], arn=snapshot.get("ARN"))


def _cache_network(journal: Journal, names: Names, ec: Any, ec2: Any, cluster: dict[str, Any]) -> None:
    """The subnet group and security group the agent made for the run's cache (named after it, used by it)."""
    subnet_group = cluster.get("CacheSubnetGroupName")
    if subnet_group == f"reconciler-{names.cache}":
        found = ec.describe_cache_subnet_groups(CacheSubnetGroupName=subnet_group)["CacheSubnetGroups"][0]
        journal.record("cache subnet group", subnet_group, arn=found.get("ARN"), vpc=found.get("VpcId"))
    ids = [g["SecurityGroupId"] for g in cluster.get("SecurityGroups", [])]
    for group in ec2.describe_security_groups(GroupIds=ids)["SecurityGroups"] if ids else []:
        tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        if group["GroupName"] == f"reconciler-{names.cache}" and tags.get("reconciler:name") == names.cache:
            journal.record("security group", group["GroupId"], name=group["GroupName"])


def _bastion(journal: Journal, names: Names) -> None:
    ec2 = boto("ec2")
    for group in _pages(ec2, "describe_security_groups", "SecurityGroups",
                        Filters=[{"Name": f"tag:{RUN_TAG}", "Values": [journal.run_id]}]):
        journal.record("security group", group["GroupId"], name=group["GroupName"])


# ---------------------------------------------------------------------- after: removing exactly that


def present(journal: Journal) -> list[Entry]:
    """The journal's resources that still exist as recorded."""
    return [e for e in journal.entries if IDENTIFY[e.kind](e, journal.run_id) is OURS]


def remove(journal: Journal, wait_s: float, say: Callable[[str], None] = print) -> list[str]:
    """Delete what the journal records, each only while it is still the resource recorded, waiting as long as AWS
    takes (a distribution is disabled, then deleted once deployed; a security group once the cache is gone).
    Returns what is still there, in words; what is no longer the recorded resource is said and left alone."""
    deadline, left_alone = time.monotonic() + wait_s, set()
    while True:
        pending = []
        for entry in sorted(journal.entries, key=lambda e: ORDER.index(e.kind)):
            if (entry.kind, entry.ident) in left_alone:
                continue
            state = IDENTIFY[entry.kind](entry, journal.run_id)
            if state is GONE:
                continue
            if state is NOT_OURS:
                left_alone.add((entry.kind, entry.ident))
                say(f"left alone: {entry.kind} {entry.ident} is no longer the one this run made")
                continue
            pending.append(entry)
            with contextlib.suppress(Exception):  # in use, or still being deleted: tried again next round
                REMOVE[entry.kind](entry)
        if not pending or time.monotonic() > deadline:
            return [f"{e.kind} {e.ident}" for e in pending if IDENTIFY[e.kind](e, journal.run_id) is OURS]
        time.sleep(min(15.0, max(1.0, wait_s / 200)))


OURS, NOT_OURS, GONE = object(), object(), object()


def _table_state(entry: Entry, run: str) -> object:
    ddb = boto("dynamodb")
    try:
        table = ddb.describe_table(TableName=entry.identity["name"])["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        return GONE
    same = table["TableArn"] == entry.ident and _iso(table.get("CreationDateTime")) == entry.identity.get("created") \
        and (not entry.identity.get("table_id") or table.get("TableId") == entry.identity["table_id"])
    return OURS if same else NOT_OURS


def _remove_table(entry: Entry) -> None:
    ddb, name = boto("dynamodb"), entry.identity["name"]
    if ddb.describe_table(TableName=name)["Table"].get("DeletionProtectionEnabled"):  # the run's own table only
        ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    ddb.delete_table(TableName=name)


def _backup_state(entry: Entry, run: str) -> object:
    ddb = boto("dynamodb")
    try:
        backup = ddb.describe_backup(BackupArn=entry.ident)["BackupDescription"]["BackupDetails"]
    except ddb.exceptions.BackupNotFoundException:
        return GONE
    return OURS if backup["BackupArn"] == entry.ident and backup.get("BackupStatus") != "DELETED" else GONE


def _bucket_state(entry: Entry, run: str) -> object:
    s3 = boto("s3")
    listed = {b["Name"]: b for b in s3.list_buckets().get("Buckets", [])}
    if entry.ident not in listed:
        return GONE
    same = _iso(listed[entry.ident].get("CreationDate")) == entry.identity.get("created")
    return OURS if same and _s3_tags(s3, entry.ident).get(RUN_TAG) == run else NOT_OURS


def _remove_bucket(entry: Entry) -> None:
    """The run's own bucket, emptied first (what it holds was published by the run)."""
    s3 = boto("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=entry.ident):
        keys = [{"Key": o["Key"], "VersionId": o["VersionId"]} for o in
                page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if keys:
            s3.delete_objects(Bucket=entry.ident, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=entry.ident)


def _distribution_state(entry: Entry, run: str) -> object:
    cf = boto("cloudfront")
    try:
        found = cf.get_distribution(Id=entry.ident)["Distribution"]
    except cf.exceptions.NoSuchDistribution:
        return GONE
    same = found["ARN"] == entry.identity.get("arn") and _cf_tags(cf, found["ARN"]).get(RUN_TAG) == run
    return OURS if same else NOT_OURS


def _remove_distribution(entry: Entry) -> None:
    """Disable it; once that is deployed (a later round), delete it."""
    cf = boto("cloudfront")
    answer = cf.get_distribution_config(Id=entry.ident)
    config = answer["DistributionConfig"]
    if config["Enabled"]:
        cf.update_distribution(Id=entry.ident, IfMatch=answer["ETag"], DistributionConfig={**config, "Enabled": False})
    elif cf.get_distribution(Id=entry.ident)["Distribution"]["Status"] == "Deployed":
        cf.delete_distribution(Id=entry.ident, IfMatch=answer["ETag"])


def _oac_state(entry: Entry, run: str) -> object:
    cf = boto("cloudfront")
    try:
        found = cf.get_origin_access_control(Id=entry.ident)["OriginAccessControl"]
    except cf.exceptions.NoSuchOriginAccessControl:
        return GONE
    return OURS if found["OriginAccessControlConfig"]["Name"] == entry.identity.get("name") else NOT_OURS


def _cache_state(entry: Entry, run: str) -> object:
    ec = boto("elasticache")
    try:
        group = ec.describe_replication_groups(ReplicationGroupId=entry.ident)["ReplicationGroups"][0]
    except ec.exceptions.ReplicationGroupNotFoundFault:
        return GONE
    if group.get("Status") == "deleting":
        return OURS  # on its way: waited for
    same = group["ARN"] == entry.identity.get("arn") and \
        _iso(group.get("ReplicationGroupCreateTime")) == entry.identity.get("created")
    return OURS if same and _ec_tags(ec, group["ARN"]).get(RUN_TAG) == run else NOT_OURS


def _remove_cache(entry: Entry) -> None:
    ec = boto("elasticache")
    if ec.describe_replication_groups(ReplicationGroupId=entry.ident)["ReplicationGroups"][0]["Status"] != "deleting":
        ec.delete_replication_group(ReplicationGroupId=entry.ident)


def _snapshot_state(entry: Entry, run: str) -> object:
    ec = boto("elasticache")
    found = _pages(ec, "describe_snapshots", "Snapshots", SnapshotName=entry.ident)
    if not found:
        return GONE
    return OURS if found[0].get("ARN") == entry.identity.get("arn") else NOT_OURS


def _subnet_group_state(entry: Entry, run: str) -> object:
    ec = boto("elasticache")
    try:
        found = ec.describe_cache_subnet_groups(CacheSubnetGroupName=entry.ident)["CacheSubnetGroups"][0]
    except ec.exceptions.CacheSubnetGroupNotFoundFault:
        return GONE
    same = found.get("ARN") == entry.identity.get("arn") and found.get("VpcId") == entry.identity.get("vpc")
    return OURS if same else NOT_OURS


def _security_group_state(entry: Entry, run: str) -> object:
    ec2 = boto("ec2")
    try:
        [group] = ec2.describe_security_groups(GroupIds=[entry.ident])["SecurityGroups"]
    except ec2.exceptions.ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code")):
            return GONE
        raise
    return OURS if group["GroupName"] == entry.identity.get("name") else NOT_OURS


ORDER = ["distribution", "origin access control", "cache", "cache snapshot", "cache subnet group",
         "security group", "table", "table backup", "bucket"]
IDENTIFY: dict[str, Callable[[Entry, str], object]] = {
    "table": _table_state, "table backup": _backup_state, "bucket": _bucket_state,
    "distribution": _distribution_state, "origin access control": _oac_state, "cache": _cache_state,
    "cache snapshot": _snapshot_state, "cache subnet group": _subnet_group_state,
    "security group": _security_group_state,
}
REMOVE: dict[str, Callable[[Entry], None]] = {
    "table": _remove_table,
    "table backup": lambda e: boto("dynamodb").delete_backup(BackupArn=e.ident),
    "bucket": _remove_bucket,
    "distribution": _remove_distribution,
    "origin access control": lambda e: boto("cloudfront").delete_origin_access_control(
        Id=e.ident, IfMatch=boto("cloudfront").get_origin_access_control(Id=e.ident)["ETag"]),
    "cache": _remove_cache,
    "cache snapshot": lambda e: boto("elasticache").delete_snapshot(SnapshotName=e.ident),
    "cache subnet group": lambda e: boto("elasticache").delete_cache_subnet_group(CacheSubnetGroupName=e.ident),
    "security group": lambda e: boto("ec2").delete_security_group(GroupId=e.ident),
}


# ---------------------------------------------------------------------- reads


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def _pages(client: Any, operation: str, key: str, **args: Any) -> list[dict[str, Any]]:
    try:
        return [item for page in client.get_paginator(operation).paginate(**args) for item in page.get(key, [])]
    except client.exceptions.ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code")):
            return []
        raise


def _backups(ddb: Any) -> Iterator[dict[str, Any]]:
    args: dict[str, Any] = {}
    while True:
        page = ddb.list_backups(**args)
        yield from page.get("BackupSummaries", [])
        if not page.get("LastEvaluatedBackupArn"):
            return
        args["ExclusiveStartBackupArn"] = page["LastEvaluatedBackupArn"]


def _distributions(cf: Any) -> list[dict[str, Any]]:
    return [d for page in cf.get_paginator("list_distributions").paginate()
            for d in page.get("DistributionList", {}).get("Items") or []]


def _oacs(cf: Any) -> list[dict[str, Any]]:
    return list(cf.list_origin_access_controls()["OriginAccessControlList"].get("Items") or [])


def _cf_tags(cf: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in cf.list_tags_for_resource(Resource=arn)["Tags"].get("Items") or []}


def _ddb_tags(ddb: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])}


def _s3_tags(s3: Any, bucket: str) -> dict[str, str]:
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except s3.exceptions.ClientError:
        return {}


def _ec_tags(ec: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn).get("TagList", [])}
