"""Dagster's event batching on the embedded instance (issue #19): `store_event_batch`.

With DAGSTER_EVENT_BATCH_SIZE set in a run's process, Dagster hands a run's planned events and
a ranged output's materializations to `EventLogStorage.store_event_batch`.
`PooledSqliteEventLogStorage` writes such a batch in one transaction
(flower_assets/instance_storage.py). These tests prove that the rows are the ones storing the
events one by one gives, in every table of the event log file (so in everything the UI reads),
on real SQLite files; that Dagster really sends batches from a ranged run; and pin each private
Dagster name the batch path touches, so an upgrade that moves one fails here.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    BATCH_WRITABLE_EVENTS,
    DagsterEventType,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from flower_assets import settings
from flower_assets.check_state_checkpoint import CheckpointedCheckState
from flower_assets.instance_storage import PooledSqliteEventLogStorage

from .conftest import REPO
from .webui import clean_env

# Columns the database fills in itself when a row is written: they differ between two files.
DATABASE_CLOCK = {"create_timestamp", "migration_completed", "updated_at"}
# The tables a batch writes.
WRITTEN = ("event_logs", "asset_keys", "asset_event_tags", "asset_check_executions")
DATES = ("2024-05-06", "2024-05-07", "2024-05-08")

days = dg.DailyPartitionsDefinition("2024-05-01", end_offset=1)


def _dated(name: str, deps: Sequence[dg.AssetsDefinition] = ()) -> dg.AssetsDefinition:
    """An asset shaped like the auction assets: a ranged run, one materialization per date it
    reports itself, and Dagster's own one per date for the output."""

    @dg.asset(
        name=name, partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run(), deps=deps
    )
    def _asset(context) -> dg.MaterializeResult:
        for key in context.partition_keys:
            context.log_event(dg.AssetMaterialization(name, partition=key, metadata={"rows": 3}))
        context.log.info("stored")
        return dg.MaterializeResult(metadata={"rows": 3 * len(context.partition_keys)})

    return _asset


raw = _dated("raw_days")
records = _dated("record_days", [raw])


@dg.asset_check(asset=raw, partitions_def=days)
def raw_complete() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=records, partitions_def=days)
def records_priced() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


DEFS = [raw, records, raw_complete, records_priced]
RANGE = {
    "dagster/asset_partition_range_start": DATES[0],
    "dagster/asset_partition_range_end": DATES[-1],
}


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    monkeypatch.delenv(settings.event_batch_size.variable, raising=False)
    yield {name: tmp_path / name for name in ("source", "one_by_one", "batched")}


def _instance(home: Path) -> dg.DagsterInstance:
    """An instance on real SQLite files in `home`, configured as the repo's dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    overrides = settings.local_instance_config(home / "dagster.yaml", home)
    instance = dg.DagsterInstance.local_temp(str(home), overrides=overrides)
    assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
    return instance


def _run_events(home: Path) -> list[EventLogEntry]:
    """Every event of a ranged run of the assets and checks, stored one by one."""
    with _instance(home) as instance:
        result = dg.materialize(DEFS, instance=instance, tags=RANGE, raise_on_error=False)
        assert result.success  # records_priced fails: a warning, not a failed run
        return list(instance.all_logs(result.run_id))


def _batches(events: Sequence[EventLogEntry], size: int) -> list[list[EventLogEntry]]:
    """Each maximal stretch of batch-writable events, cut into batches of `size`; any other
    event alone."""
    out: list[list[EventLogEntry]] = []
    stretch: list[EventLogEntry] = []
    for event in [*events, None]:
        if event is not None and event.dagster_event_type in BATCH_WRITABLE_EVENTS:
            stretch.append(event)
            continue
        out += [stretch[i : i + size] for i in range(0, len(stretch), size)]
        stretch = []
        if event is not None:
            out.append([event])
    return out


def _tables(home: Path) -> dict[str, list[tuple]]:
    """Every row of every table of the event log file, in id order, but the database's clock."""
    with sqlite3.connect(home / "event_log.db") as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {}
        for name in names:
            cursor = db.execute(f"SELECT * FROM {name} ORDER BY rowid")
            keep = [i for i, c in enumerate(cursor.description) if c[0] not in DATABASE_CLOCK]
            tables[name] = [tuple(row[i] for i in keep) for row in cursor]
    return tables


def _store(home: Path, batches: list[list[EventLogEntry]], batched: bool) -> list[int]:
    """Store the batches one event at a time, or each through store_event_batch; how many
    connections of the storage's engine each batch took."""
    with _instance(home) as instance:
        storage = instance.event_log_storage
        storage.has_asset_key(dg.AssetKey("raw_days"))  # open the file's engine before counting
        engine = storage._engines[os.getpid()]
        opened = [0]

        def count(connection: sa.Connection) -> None:
            opened[0] += connection.engine is engine

        connections = []
        sa.event.listen(sa.Engine, "engine_connect", count)
        try:
            for batch in batches:
                before = opened[0]
                if batched and len(batch) > 1:
                    storage.store_event_batch(batch)
                    connections.append(opened[0] - before)
                else:
                    for event in batch:
                        storage.store_event(event)
        finally:
            sa.event.remove(sa.Engine, "engine_connect", count)
    return connections


def _ui_reads(home: Path) -> dict[str, object]:
    """What the UI's asset and check pages ask the storage, through its own queries."""
    keys = [dg.AssetKey(name) for name in ("raw_days", "record_days")]
    checks = [raw_complete.check_key, records_priced.check_key]
    with _instance(home) as instance:
        storage = instance.event_log_storage
        records = storage.get_asset_records(keys)
        return {
            "materialized": [storage.get_materialized_partitions(key) for key in keys],
            "latest": [r.asset_entry.last_materialization_record.storage_id for r in records],
            "last_run": [r.asset_entry.last_run_id for r in records],
            "checks": [
                sorted(
                    storage.get_asset_check_partition_info([key]),
                    key=lambda i: i.partition_key or "",
                )
                for key in checks
            ],
        }


@pytest.mark.parametrize("size", [500, 3])
def test_a_batch_stores_the_rows_storing_its_events_one_by_one_stores(homes, size) -> None:
    events = _run_events(homes["source"])
    types = Counter(event.dagster_event_type for event in events)
    # The shapes Dagster batches: planned materializations (one per asset and date), planned
    # checks (one per check, its dates in a subset), materializations (per date, twice).
    assert types[DagsterEventType.ASSET_MATERIALIZATION_PLANNED] == 2 * len(DATES)
    assert types[DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED] == 2
    assert types[DagsterEventType.ASSET_MATERIALIZATION] == 2 * 2 * len(DATES)
    batches = _batches(events, size)
    assert max(len(batch) for batch in batches) == min(size, 4 * len(DATES) // 2 + 2)

    _store(homes["one_by_one"], batches, batched=False)
    connections = _store(homes["batched"], batches, batched=True)
    # One connection, so one transaction, per batch: the planned checks' rows join it.
    assert connections == [1] * sum(len(batch) > 1 for batch in batches)

    expected, got = _tables(homes["one_by_one"]), _tables(homes["batched"])
    assert set(got) == set(expected)
    for name in WRITTEN:
        assert expected[name], name  # the batch path's tables are all written
    for name, rows in expected.items():
        assert got[name] == rows, name
    reads = _ui_reads(homes["batched"])
    assert reads == _ui_reads(homes["one_by_one"])
    assert reads["materialized"] == [set(DATES)] * 2


def test_mixed_batches_leave_each_assets_row_as_its_events_one_by_one_do(homes) -> None:
    """Batches Dagster does not make (planned and done materializations of one asset, several
    assets, checks in between): the asset_keys row still ends as event by event."""
    events = _run_events(homes["source"])
    writable = [event for event in events if event.dagster_event_type in BATCH_WRITABLE_EVENTS]
    # Interleaved by date: planned, reported, output materializations of both assets.
    writable.sort(key=lambda event: (event.get_dagster_event().partition or "", event.timestamp))
    batches = [writable[i : i + 5] for i in range(0, len(writable), 5)]
    assert any(len({e.dagster_event_type for e in batch}) > 1 for batch in batches)
    _store(homes["one_by_one"], batches, batched=False)
    _store(homes["batched"], batches, batched=True)
    assert _tables(homes["batched"]) == _tables(homes["one_by_one"])


def test_a_failed_batch_leaves_nothing_so_dagsters_fallback_stores_it_once(
    homes, monkeypatch
) -> None:
    """Dagster stores a batch one by one when `store_event_batch` raises: the batch's
    transaction must then have left no row behind."""
    events = _run_events(homes["source"])
    batch = [
        *[e for e in events if e.dagster_event_type in ASSET_EVENTS][:4],
        *[e for e in events if e.dagster_event_type in ASSET_CHECK_EVENTS][:1],
    ]
    with _instance(homes["batched"]) as instance:
        storage = instance.event_log_storage

        def broken(*_args: object) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(storage, "store_asset_check_event", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            storage.store_event_batch(batch)  # the planned check's rows come last
        monkeypatch.undo()
        assert not any(_tables(homes["batched"])[name] for name in WRITTEN)
        for event in batch:  # Dagster's fallback (DagsterInstance.handle_new_event)
            storage.store_event(event)
    _store(homes["one_by_one"], [[event] for event in batch], batched=False)
    assert _tables(homes["batched"]) == _tables(homes["one_by_one"])


def test_a_ranged_run_sends_its_batches_with_the_setting_applied(homes, monkeypatch) -> None:
    """Through Dagster itself: the setting on, a ranged run's planned events and each output's
    materializations reach store_event_batch, and the run records what it records without."""
    sent: list[Counter] = []
    store_batch = PooledSqliteEventLogStorage.store_event_batch

    def spy(self, events: Sequence[EventLogEntry]) -> None:
        sent.append(Counter(event.dagster_event_type for event in events))
        store_batch(self, events)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event_batch", spy)
    without = _tables_of_run(homes["one_by_one"])
    assert sent == []
    settings.apply_event_batching()
    with_batches = _tables_of_run(homes["batched"])
    planned = Counter(
        {
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED: 2 * len(DATES),
            DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED: 2,
        }
    )
    outputs = Counter({DagsterEventType.ASSET_MATERIALIZATION: len(DATES)})
    assert sent == [planned, outputs, outputs]
    assert with_batches == without


def _tables_of_run(home: Path) -> dict[str, list[tuple]]:
    """A ranged run's rows with what differs between two runs of it left out (run ids, clocks,
    the serialized events), the run's event ids kept: both runs store the same events in the
    same order."""
    _run_events(home)
    with sqlite3.connect(home / "event_log.db") as db:
        return {
            "event_logs": db.execute(
                "SELECT id, dagster_event_type, step_key, asset_key, partition FROM event_logs"
                " ORDER BY id"
            ).fetchall(),
            "asset_keys": db.execute(
                "SELECT asset_key, last_materialization IS NOT NULL, last_run_id IS NOT NULL"
                " FROM asset_keys ORDER BY id"
            ).fetchall(),
            "asset_event_tags": db.execute(
                "SELECT event_id, asset_key, key FROM asset_event_tags ORDER BY id"
            ).fetchall(),
            "asset_check_executions": db.execute(
                "SELECT id, asset_key, check_name, partition, execution_status,"
                " evaluation_event_storage_id, materialization_event_storage_id"
                " FROM asset_check_executions ORDER BY id"
            ).fetchall(),
        }


# What a run process does first: load the code location (the `flower-assets` command before it
# builds a run, a run worker of the daemon or the webserver before it executes one).
PROBE = "import os, flower_assets.definitions; print(os.environ['DAGSTER_EVENT_BATCH_SIZE'])"


@pytest.mark.parametrize(
    ("given", "applied"),
    [(None, str(settings.event_batch_size.default)), ("0", "0"), ("lots", None)],
)
def test_loading_the_code_location_applies_batching_unless_told_otherwise(
    given, applied, tmp_path
) -> None:
    extra = {"DAGSTER_HOME": str(tmp_path)}
    if given is not None:
        extra[settings.event_batch_size.variable] = given
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean_env(**extra), capture_output=True, text=True
    )
    if applied is None:  # refused with the variable's name, as every setting
        assert done.returncode != 0
        assert "DAGSTER_EVENT_BATCH_SIZE='lots' must be a whole number" in done.stderr
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == applied


def test_the_private_dagster_names_the_batch_path_relies_on_are_still_there() -> None:
    # Dagster's hook: the instance hands batches to the storage's store_event_batch(events).
    assert list(inspect.signature(EventLogStorage.store_event_batch).parameters) == [
        "self",
        "events",
    ]
    assert "store_event_batch" in vars(PooledSqliteEventLogStorage)
    # The event types Dagster batches, and the two groups store_event indexes: the batch path
    # handles exactly the batchable ones (asset events, planned checks).
    handled = ASSET_EVENTS | {DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}
    assert BATCH_WRITABLE_EVENTS.issubset(handled)
    assert DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED in ASSET_CHECK_EVENTS
    # The SQL base class's pieces of store_event, called by the batch path as store_event does.
    for name, parameters in {
        "prepare_insert_event_batch": ["self", "events"],
        "_store_asset_event_tags": ["self", "conn", "events", "event_ids"],
        "_store_asset_event": ["self", "conn", "event", "event_id"],
        "store_asset_check_event": ["self", "event", "event_id"],
    }.items():
        method = vars(SqlEventLogStorage)[name]
        assert list(inspect.signature(method).parameters) == parameters, name
    assert SqlEventLogStorageTable.c.id.primary_key
    # Nothing between our class and Dagster's SQL base overrides what a batch replaces: the
    # check-state mixin (or a later base) doing work in store_event must be called through.
    for name in ("store_event", "_store_asset_event", "_store_asset_event_tags"):
        assert getattr(PooledSqliteEventLogStorage, name) is vars(SqlEventLogStorage)[name], name
    assert "store_event_batch" not in vars(CheckpointedCheckState)
