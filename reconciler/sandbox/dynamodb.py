"""DynamoDB in the sandbox: moto's model with AWS's states, durations and refusals.

Rules (each tested with boto3 in tests/integration/sandbox/test_aws_time.py, listed in docs/sandbox.md):
- CreateTable: the table and its indexes are CREATING, then ACTIVE.
- UpdateTable, DeleteTable, UpdateTimeToLive on a table that is not ACTIVE: ResourceInUseException;
  UpdateContinuousBackups: ContinuousBackupsUnavailableException; items cannot be written yet.
- Continuous backups (the base of point-in-time recovery) become available a moment after the table is
  ACTIVE (observed, not documented: see docs/sandbox.md); until then DescribeContinuousBackups says
  DISABLED and UpdateContinuousBackups is refused with ContinuousBackupsUnavailableException.
- One index Create or Delete per UpdateTable, and none while another index is not ACTIVE:
  LimitExceededException (API Reference, UpdateTable; Developer Guide, GSI limits). While an index
  backfills, the throughput of the table and of the other indexes may change, the backfilling index
  may be deleted, and the table may not (Developer Guide, "Managing global secondary indexes").
- A new index is CREATING with Backfilling, a deleted one DELETING, then gone.
- Billing mode: PROVISIONED -> PAY_PER_REQUEST at most 4 times in a rolling 24 hours
  (LimitExceededException); -> PROVISIONED needs throughput for the table and every index
  (ValidationException); the switch keeps the table UPDATING for minutes.
- Throughput equal to the current one "will not change" (ValidationException), for the table and
  for each index; an index updated twice in one call is refused.
- UpdateTimeToLive: any further UpdateTimeToLive within the hour after a successful one is a
  ValidationException, whatever the status shows; the status is ENABLING/DISABLING meanwhile, for a
  typical processing time that is shorter than that hour. Enabling an enabled TTL: ValidationException.
- DeleteTable: DELETING, then gone; the name cannot be created again meanwhile; a second DeleteTable
  while it is DELETING is no error.
- TagResource overwrites a key's value (moto 5.2.5 appended a duplicate key).
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.sandbox.clock import current

_DAY_S = 24 * 3600
_PPR_SWITCHES_PER_DAY = 4
_PREFIX = "com.amazonaws.dynamodb.v20120810#"


def _error(code: str, message: str) -> Exception:
    from moto.dynamodb.exceptions import DynamodbException

    return DynamodbException(_PREFIX + code, message)


def _status(table: Any) -> str:
    return getattr(table, "_rs_status", "ACTIVE")


def _busy_word(table: Any) -> str:
    return {"CREATING": "created", "DELETING": "deleted"}.get(_status(table), "updated")


def _require_active(table: Any) -> None:
    if _status(table) != "ACTIVE":
        raise _error("ResourceInUseException", f"Attempt to change a resource which is still in use: "
                                               f"Table is being {_busy_word(table)}: {table.name}")


def _indexes_busy(table: Any) -> list[str]:
    return [g.name for g in table.global_indexes if g.status != "ACTIVE"]


def _settle(index: Any, busy: str) -> None:
    """The index's work is done: ACTIVE, unless something else (its deletion) has taken over meanwhile."""
    if index.status == busy:
        index.status = "ACTIVE"


def _table_status(table: Any, status: str) -> None:
    table._rs_status = status


def patch_moto_dynamodb() -> None:
    """Install the rules above into moto's DynamoDB model (idempotent)."""
    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]

    _patch_describe()
    _patch_create_delete(backend)
    _patch_update(backend)
    _patch_settings(backend)
    _patch_items_and_tags(backend)


def _patch_describe() -> None:
    """DescribeTable says the table's and each index's status as AWS does (CREATING, backfilling)."""
    from moto.dynamodb.models.table import GlobalSecondaryIndex, Table

    table_describe = Table.describe

    def describe_with_status(self: Any, base_key: str = "TableDescription") -> dict[str, Any]:
        out = table_describe(self, base_key)
        out[base_key]["TableStatus"] = _status(self)
        return out

    index_describe = GlobalSecondaryIndex.describe

    def index_with_backfill(self: Any) -> dict[str, Any]:
        out = index_describe(self)
        if self.status == "CREATING":
            out["Backfilling"] = True
        return out

    Table.describe = describe_with_status  # type: ignore[method-assign]
    GlobalSecondaryIndex.describe = index_with_backfill  # type: ignore[method-assign]


def _patch_create_delete(backend: Any) -> None:
    """CreateTable and DeleteTable take AWS's time; a name is free only once its table is gone."""
    create = backend.create_table

    def create_takes_time(self: Any, name: str, **kwargs: Any) -> Any:
        existing = self.tables.get(name)
        if existing is not None and _status(existing) == "DELETING":
            raise _error("ResourceInUseException", f"Attempt to change a resource which is still in use: "
                                                   f"Table is being deleted: {name}")
        table = create(self, name, **kwargs)
        _table_status(table, "CREATING")
        table.continuous_backups["ContinuousBackupsStatus"] = "DISABLED"
        for gsi in table.global_indexes:
            gsi.status = "CREATING"
        clock = current()

        def backups_available() -> None:
            table.continuous_backups["ContinuousBackupsStatus"] = "ENABLED"

        def ready() -> None:
            _table_status(table, "ACTIVE")
            for gsi in table.global_indexes:
                gsi.status = "ACTIVE"
            clock.after("dynamodb.backups", backups_available)

        clock.after("dynamodb.create", ready)
        return table

    def delete_takes_time(self: Any, name: str) -> Any:
        table = self.get_table(name)
        if _status(table) == "DELETING":
            return table  # "If table is already in the DELETING state, no error is returned."
        _require_active(table)
        backfilling = [g.name for g in table.global_indexes if g.status == "CREATING"]
        if backfilling:
            raise _error("ResourceInUseException", f"Attempt to change a resource which is still in use: "
                                                   f"Index is being created (backfilling): {backfilling[0]}")
        if table.deletion_protection_enabled:
            from moto.dynamodb.exceptions import DeletionProtectedException

            raise DeletionProtectedException(name)
        _table_status(table, "DELETING")

        def gone() -> None:
            if self.tables.get(name) is table:
                del self.tables[name]

        current().after("dynamodb.delete", gone)
        return table
    backend.create_table = create_takes_time  # type: ignore[method-assign]
    backend.delete_table = delete_takes_time  # type: ignore[method-assign]


def _patch_update(backend: Any) -> None:
    """UpdateTable in AWS's steps: one index change a call, the billing switch first, each taking AWS's time."""
    update = backend.update_table

    def update_in_steps(self: Any, name: str, attr_definitions: Any, global_index: Any, throughput: Any,
                        billing_mode: Any, stream_spec: Any, deletion_protection_enabled: Any,
                        warm_throughput: Any) -> Any:
        table = self.get_table(name)
        _require_active(table)
        updates = list(global_index or [])
        _check_index_updates(table, updates)
        switching = bool(billing_mode) and billing_mode != table.billing_mode
        if switching:
            _check_billing_switch(table, billing_mode, throughput, updates)
        elif throughput and table.billing_mode == "PROVISIONED" and _same_throughput(table.throughput, throughput):
            raise _error("ValidationException", _unchanged("table", table.throughput, throughput))
        deletes = [u["Delete"]["IndexName"] for u in updates if "Delete" in u]
        kept = [u for u in updates if "Delete" not in u]
        for index_name in deletes:
            _delete_index(table, index_name)
        created = [u["Create"]["IndexName"] for u in kept if "Create" in u]
        resized = [u["Update"]["IndexName"] for u in kept if "Update" in u]
        result = update(self, name, attr_definitions, kept, throughput, billing_mode, stream_spec,
                        deletion_protection_enabled, warm_throughput)
        clock = current()
        by_name = {g.name: g for g in table.global_indexes}
        for index_name in created:
            gsi = by_name[index_name]
            gsi.status = "CREATING"
            clock.after("dynamodb.index_create", lambda g=gsi: _settle(g, "CREATING"))
        if switching or throughput:
            _table_status(table, "UPDATING")
            clock.after("dynamodb.billing" if switching else "dynamodb.throughput",
                        lambda: _table_status(table, "ACTIVE"))
            if switching and billing_mode == "PAY_PER_REQUEST":
                table._rs_ppr_switches = [*_recent_switches(table), time.time()]
        for index_name in resized:
            if not switching and index_name in by_name and by_name[index_name].status == "ACTIVE":
                gsi = by_name[index_name]
                gsi.status = "UPDATING"
                clock.after("dynamodb.throughput", lambda g=gsi: _settle(g, "UPDATING"))
        return result
    backend.update_table = update_in_steps  # type: ignore[method-assign]


def _patch_settings(backend: Any) -> None:
    """TTL (one change an hour) and continuous backups (once AWS has turned them on)."""
    ttl_update = backend.update_time_to_live

    def ttl_one_change_an_hour(self: Any, table_name: str, ttl_spec: dict[str, Any]) -> None:
        table = self.tables.get(table_name)
        if table is not None:
            _require_active(table)
            if getattr(table, "_rs_ttl_locked", False):  # for the hour after the last call, whatever the status
                raise _error("ValidationException",
                             "Time to live has been modified multiple times within a fixed interval")
            status = table.ttl.get("TimeToLiveStatus", "DISABLED")
            if ttl_spec.get("Enabled") and status == "ENABLED":
                raise _error("ValidationException", "TimeToLive is already enabled")
            if not ttl_spec.get("Enabled") and status == "DISABLED":
                raise _error("ValidationException", "TimeToLive is already disabled")
        ttl_update(self, table_name, ttl_spec)
        if table is None:
            return
        final = table.ttl["TimeToLiveStatus"]
        table.ttl["TimeToLiveStatus"] = "ENABLING" if final == "ENABLED" else "DISABLING"
        table._rs_ttl_locked = True
        table._rs_ttl_calls = getattr(table, "_rs_ttl_calls", 0) + 1
        call = table._rs_ttl_calls

        def processed() -> None:
            if table._rs_ttl_calls == call:
                table.ttl["TimeToLiveStatus"] = final

        def unlocked() -> None:
            if table._rs_ttl_calls == call:
                table._rs_ttl_locked = False

        current().after("dynamodb.ttl", processed)
        current().after("dynamodb.ttl_lock", unlocked)

    backups_update = backend.update_continuous_backups

    def backups_when_available(self: Any, table_name: str, point_in_time_spec: dict[str, Any]) -> Any:
        table = self.tables.get(table_name)
        if table is not None and (_status(table) != "ACTIVE"
                                  or table.continuous_backups.get("ContinuousBackupsStatus") != "ENABLED"):
            raise _error("ContinuousBackupsUnavailableException",
                         f"Backups are being enabled for the table: {table_name}. Please retry later")
        return backups_update(self, table_name, point_in_time_spec)
    backend.update_time_to_live = ttl_one_change_an_hour  # type: ignore[method-assign]
    backend.update_continuous_backups = backups_when_available  # type: ignore[method-assign]


def _patch_items_and_tags(backend: Any) -> None:
    """Items only into an ACTIVE table; TagResource overwrites a key, as AWS does."""
    put_item = backend.put_item

    def put_when_ready(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        table = self.tables.get(table_name)
        if table is not None and _status(table) in ("CREATING", "DELETING"):
            raise _error("ResourceNotFoundException", "Requested resource not found")
        return put_item(self, table_name, *args, **kwargs)

    def tag_resource_overwrites(self: Any, arn: str, tags: dict[str, str]) -> None:
        for table in self.tables.values():
            if table.table_arn == arn:
                if _status(table) in ("CREATING", "DELETING"):
                    _require_active(table)
                kept = [t for t in table.tags if t["Key"] not in tags]
                table.tags = kept + [{"Key": k, "Value": v} for k, v in tags.items()]
    backend.put_item = put_when_ready  # type: ignore[method-assign]
    backend.tag_resource = tag_resource_overwrites  # type: ignore[method-assign]


def _check_index_updates(table: Any, updates: list[dict[str, Any]]) -> None:
    online = [u for u in updates if "Create" in u or "Delete" in u]
    busy = {g.name: g.status for g in table.global_indexes if g.status != "ACTIVE"}
    if len(online) > 1 or (online and busy and not _deletes_the_backfilling_index(online[0], busy)):
        raise _error("LimitExceededException", "Subscriber limit exceeded: Only 1 online index can be created or "
                                               "deleted simultaneously per table")
    for update in updates:  # throughput: any index's, unless that index is itself being changed or removed
        name = update.get("Update", {}).get("IndexName")
        if busy.get(name) in ("UPDATING", "DELETING"):
            raise _error("ResourceInUseException", f"Attempt to change a resource which is still in use: "
                                                   f"Index is being updated: {name}")
    named = [next(iter(u.values()))["IndexName"] for u in updates]
    for index_name in named:
        if named.count(index_name) > 1:
            raise _error("ValidationException", "One or more parameter values were invalid: Only one global "
                                                f"secondary index update per index is allowed simultaneously. "
                                                f"Index: {index_name}")
    existing = {g.name: g for g in table.global_indexes}
    for update in updates:
        resize = update.get("Update")
        if resize and resize["IndexName"] in existing and table.billing_mode == "PROVISIONED" and \
                _same_throughput(existing[resize["IndexName"]].throughput, resize.get("ProvisionedThroughput")):
            raise _error("ValidationException",
                         _unchanged(f"index {resize['IndexName']}", existing[resize["IndexName"]].throughput,
                                    resize["ProvisionedThroughput"]))


def _deletes_the_backfilling_index(update: dict[str, Any], busy: dict[str, str]) -> bool:
    """AWS: "You can delete an index that is being created during the Backfilling phase"."""
    name = update.get("Delete", {}).get("IndexName")
    return name is not None and busy == {name: "CREATING"}


def _check_billing_switch(table: Any, mode: str, throughput: Any, updates: list[dict[str, Any]]) -> None:
    if mode == "PAY_PER_REQUEST":
        if len(_recent_switches(table)) >= _PPR_SWITCHES_PER_DAY:
            raise _error("LimitExceededException",
                         f"Subscriber limit exceeded: Update to PayPerRequest mode are limited to "
                         f"{_PPR_SWITCHES_PER_DAY} times within a rolling 24-hour window for table: {table.name}")
        return
    if not throughput:
        raise _error("ValidationException", "One or more parameter values were invalid: ProvisionedThroughput must "
                                            "be specified when BillingMode is PROVISIONED")
    deleted = {u["Delete"]["IndexName"] for u in updates if "Delete" in u}
    sized = {u["Update"]["IndexName"] for u in updates if "Update" in u and u["Update"].get("ProvisionedThroughput")}
    for gsi in table.global_indexes:
        if gsi.name not in deleted and gsi.name not in sized:
            raise _error("ValidationException", "One or more parameter values were invalid: ProvisionedThroughput "
                                                f"must be specified for index: {gsi.name}")


def _recent_switches(table: Any) -> list[float]:
    cutoff = time.time() - _DAY_S
    return [t for t in getattr(table, "_rs_ppr_switches", []) if t > cutoff]


def _delete_index(table: Any, index_name: str) -> None:
    gsi = next((g for g in table.global_indexes if g.name == index_name), None)
    if gsi is None:
        raise _error("ResourceNotFoundException", f"Requested resource not found: Index: {index_name}")
    gsi.status = "DELETING"

    def gone() -> None:
        table.global_indexes = [g for g in table.global_indexes if g is not gsi]

    current().after("dynamodb.index_delete", gone)


def _same_throughput(have: dict[str, Any] | None, want: dict[str, Any] | None) -> bool:
    if not have or not want:
        return False
    return (int(have.get("ReadCapacityUnits", -1)) == int(want.get("ReadCapacityUnits", -2))
            and int(have.get("WriteCapacityUnits", -1)) == int(want.get("WriteCapacityUnits", -2)))


def _unchanged(what: str, have: dict[str, Any], want: dict[str, Any]) -> str:
    return (f"The provisioned throughput for the {what} will not change. The requested value equals the current "
            f"value. Current ReadCapacityUnits provisioned for the {what}: {have['ReadCapacityUnits']}. Requested "
            f"ReadCapacityUnits: {want['ReadCapacityUnits']}. Current WriteCapacityUnits provisioned for the "
            f"{what}: {have['WriteCapacityUnits']}. Requested WriteCapacityUnits: {want['WriteCapacityUnits']}.")
