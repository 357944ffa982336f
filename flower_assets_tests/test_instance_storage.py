"""The embedded instance's storages (dagster.yaml): pooled, tuned, created under a lock.

`PooledSqliteEventLogStorage` subclasses Dagster's consolidated SQLite event log and overrides
private parts of it. These tests pin each private name it touches and prove, on the connections
the storage really uses, the two things it exists for: one pooled engine per process and
`synchronous=NORMAL`. A Dagster upgrade that moves any of it fails here instead of making
a year's backfill about twice as slow without a word.

All three SQLite storages (runs, event log, schedules) open their files under the instance's
creation lock. The tests at the end pin the Dagster names that relies on and prove that every
storage file is created while the lock is held, so that an upgrade which moves Dagster's
creation code out of reach fails here, not as a corrupted instance (test_instance_first_use.py).
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from flower_assets import instance_storage
from flower_assets.instance_storage import (
    EVENT_LOG_DB,
    RUNS_DB,
    SCHEDULES_DB,
    LockedSqliteRunStorage,
    LockedSqliteScheduleStorage,
    PooledSqliteEventLogStorage,
)

from .conftest import REPO

SYNCHRONOUS_NORMAL = 1  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL (Dagster's default), 3 EXTRA


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding a copy of the repo's dagster.yaml, as an operator would make it."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
        yield instance


def test_the_private_dagster_names_it_relies_on_are_still_there(instance) -> None:
    # The import: the class path is the one Dagster documents for dagster.yaml.
    from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage

    # With the asset check state checkpoint mixed in first (test_check_state_checkpoint.py pins
    # what that mixin relies on).
    from flower_assets.check_state_checkpoint import CheckpointedCheckState

    assert PooledSqliteEventLogStorage.__bases__ == (
        CheckpointedCheckState,
        ConsolidatedSqliteEventLogStorage,
    )
    # `_connect`: Dagster's consolidated log opens every connection through it (run_connection,
    # index_connection); the override replaces the engine it builds per statement.
    assert callable(vars(ConsolidatedSqliteEventLogStorage).get("_connect"))
    assert "_connect" in vars(PooledSqliteEventLogStorage)
    # `has_table(table_name)`: Dagster's asks on a new engine per call, for every asset event.
    assert list(inspect.signature(ConsolidatedSqliteEventLogStorage.has_table).parameters) == [
        "self",
        "table_name",
    ]
    assert "has_table" in vars(PooledSqliteEventLogStorage)
    # `_conn_string`: the SQLAlchemy URL of the event log file, set by Dagster's __init__.
    storage = instance.event_log_storage
    assert storage.has_table("asset_event_tags") and storage.has_table("asset_event_tags")
    assert not storage.has_table("no_such_table")
    db_file = Path(storage.get_db_path()).resolve()
    assert storage._conn_string == f"sqlite:///{db_file}"
    assert db_file.parent == Path(os.environ["DAGSTER_HOME"]).resolve()
    assert db_file == Path(os.environ["DAGSTER_HOME"], *EVENT_LOG_DB).resolve()


@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-05-01"))
def blooms(context) -> dg.MaterializeResult:
    context.log.info("counted")
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=blooms, partitions_def=blooms.partitions_def)
def blooms_counted() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_every_event_statement_runs_pooled_with_synchronous_normal(instance) -> None:
    """Store and read events the way a run does; watch every statement on the event log file."""
    storage = instance.event_log_storage
    db_file = str(Path(storage.get_db_path()).resolve())
    synchronous: dict[int, int] = {}  # per DBAPI connection, read when it is handed out
    journal: dict[int, str] = {}
    statements: list[tuple[sa.Engine, int, str]] = []

    def handed_out(connection: sa.Connection) -> None:
        if connection.engine.url.database == db_file:
            raw = connection.connection.dbapi_connection
            synchronous[id(raw)] = raw.execute("PRAGMA synchronous").fetchone()[0]
            journal[id(raw)] = raw.execute("PRAGMA journal_mode").fetchone()[0]

    def executed(connection: sa.Connection, _cursor, statement: str, *_: object) -> None:
        if connection.engine.url.database == db_file:
            raw = connection.connection.dbapi_connection
            statements.append((connection.engine, id(raw), statement))

    sa.event.listen(sa.Engine, "engine_connect", handed_out)
    sa.event.listen(sa.Engine, "before_cursor_execute", executed)
    try:
        for day in ("2024-05-10", "2024-05-11"):
            result = dg.materialize([blooms, blooms_counted], instance=instance, partition_key=day)
            assert result.success
        assert instance.get_materialized_partitions(blooms.key) == {"2024-05-10", "2024-05-11"}
        assert len(instance.all_logs(result.run_id)) > 10
    finally:
        sa.event.remove(sa.Engine, "engine_connect", handed_out)
        sa.event.remove(sa.Engine, "before_cursor_execute", executed)

    # Dagster's `has_table` probes the schema (PRAGMA table_info) on an engine of its own;
    # every statement that writes or reads events is on the storage's one pooled engine.
    events = [(engine, raw) for engine, raw, sql in statements if not _is_pragma(sql)]
    assert len(events) > 50
    assert {engine for engine, _ in events} == {storage._engines.get(os.getpid())}
    # Reused across connections: a handful of DBAPI connections for all those statements.
    used = {raw for _, raw in events}
    assert len(used) <= 2 < len(events)
    assert {synchronous[raw] for raw in used} == {SYNCHRONOUS_NORMAL}
    assert {journal[raw] for raw in used} == {"wal"}


def _is_pragma(statement: str) -> bool:
    return statement.lstrip().upper().startswith("PRAGMA")


def _store_in_child(instance: dg.DagsterInstance, parent_engine: sa.Engine, done) -> None:
    storage = instance.event_log_storage
    instance.report_runless_asset_event(dg.AssetMaterialization("blooms", partition="2024-05-12"))
    engine = storage._engines.get(os.getpid())
    done.put(engine is not None and engine is not parent_engine)


def test_a_forked_process_gets_an_engine_of_its_own(instance) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("blooms", partition="2024-05-10"))
    parent_engine = instance.event_log_storage._engines[os.getpid()]
    fork = multiprocessing.get_context("fork")
    done = fork.Queue()
    child = fork.Process(target=_store_in_child, args=(instance, parent_engine, done))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and done.get(timeout=5)
    assert instance.get_materialized_partitions(dg.AssetKey("blooms")) == {
        "2024-05-10",
        "2024-05-12",
    }
    with sqlite3.connect(instance.event_log_storage.get_db_path()) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_events_one_instance_writes_are_read_by_another_process(instance) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization("bidding_flowers", partition="2024-05-10")
    )
    # The daemon and the webserver are other processes with engines of their own.
    reader = (
        "import dagster as dg\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    keys = instance.get_materialized_partitions(dg.AssetKey('bidding_flowers'))\n"
        "    print(sorted(keys))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['2024-05-10']"
    # And this engine sees what another process wrote.
    writer = (
        "import dagster as dg\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    instance.report_runless_asset_event(\n"
        "        dg.AssetMaterialization('bidding_flowers', partition='2024-05-11'))\n"
    )
    subprocess.run([sys.executable, "-c", writer], capture_output=True, check=True)
    assert instance.get_materialized_partitions(dg.AssetKey("bidding_flowers")) == {
        "2024-05-10",
        "2024-05-11",
    }


def _db_files(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*.db")}


def test_the_locked_storages_are_dagsters_own_in_its_default_places(
    instance, tmp_path_factory
) -> None:
    # The imports and the bases: Dagster's SQLite run and schedule storages, subclassed.
    from dagster._core.storage.runs import SqliteRunStorage
    from dagster._core.storage.schedules import SqliteScheduleStorage

    assert LockedSqliteRunStorage.__bases__[1:] == (SqliteRunStorage,)
    assert LockedSqliteScheduleStorage.__bases__[1:] == (SqliteScheduleStorage,)
    assert type(instance.run_storage) is LockedSqliteRunStorage
    assert type(instance.schedule_storage) is LockedSqliteScheduleStorage
    # `from_local(base_dir, inst_data)` creates the storage; the subclasses call it under the lock.
    for base in (SqliteRunStorage, SqliteScheduleStorage):
        assert list(inspect.signature(base.from_local).parameters) == ["base_dir", "inst_data"]
    # A run worker opens the instance from its ref: the same classes, the same files.
    with dg.DagsterInstance.from_ref(instance.get_ref()) as again:
        assert type(again.run_storage) is LockedSqliteRunStorage
        assert type(again.schedule_storage) is LockedSqliteScheduleStorage
    # runs.db and schedules.db lie where Dagster keeps them without any storage configured.
    home, elsewhere = Path(os.environ["DAGSTER_HOME"]), tmp_path_factory.mktemp("defaults")
    with dg.DagsterInstance.local_temp(str(elsewhere)):
        pass
    ours, defaults = _db_files(home), _db_files(elsewhere)
    for db in (RUNS_DB, SCHEDULES_DB):
        assert Path(*db) in ours & defaults, (sorted(ours), sorted(defaults))
    assert Path(*EVENT_LOG_DB) in ours


def test_the_damage_checks_read_dagsters_revision_and_tables(instance) -> None:
    # `head_revision`: Dagster's `get_alembic_config` and the run storage module's alembic.ini.
    head = instance_storage.head_revision()
    assert instance.run_storage.alembic_version() == (head, head)
    assert instance.schedule_storage.alembic_version() == (head, head)
    # `_event_log_tables`: Dagster's `SqlEventLogStorageMetadata`, the tables of a new event log.
    with sqlite3.connect(instance.event_log_storage.get_db_path()) as check:
        found = {name for (name,) in check.execute("SELECT name FROM sqlite_master")}
    tables = instance_storage._event_log_tables()
    assert "event_logs" in tables and tables <= found


def test_every_storage_file_is_created_while_the_lock_is_held(home, monkeypatch) -> None:
    """Open a new instance; watch which storage files exist when each lock is taken and released."""
    locked = instance_storage.creating
    windows: list[tuple[set[Path], set[Path]]] = []

    @contextmanager
    def watched(instance_dir: str) -> Iterator[None]:
        with locked(instance_dir):
            before = _db_files(home)
            yield
            windows.append((before, _db_files(home)))

    monkeypatch.setattr(instance_storage, "creating", watched)
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("blooms"))
        assert instance.get_runs() == [] and instance.all_instigator_state() == []

    files = {Path(*db) for db in (RUNS_DB, EVENT_LOG_DB, SCHEDULES_DB)}
    assert _db_files(home) == files
    # One lock per storage; each file appeared inside one of them, none between them.
    assert len(windows) == 3
    created = [after - before for before, after in windows]
    assert sorted(map(sorted, created)) == sorted([p] for p in files)
    assert windows[0][0] == set()
    assert all(windows[i][1] == windows[i + 1][0] for i in range(2))
