"""The embedded instance's event log: Dagster's consolidated SQLite log, made cheap per event
and per UI request.

A backfill records some twenty events per auction date (materializations and per-date check
results), so the cost of storing one event sets the pace of history loads. Dagster's own
`ConsolidatedSqliteEventLogStorage` builds a new SQLAlchemy engine for every statement (a new
connection, and an empty compiled-SQL cache each time) and commits with `synchronous=FULL`;
together that is ~10 ms of CPU and fsync per event here. This subclass keeps one engine per
process and commits with `synchronous=NORMAL` in the WAL mode Dagster already sets: a crashed
process loses nothing, a power cut can lose the last commits but never corrupts the file.
On the year benchmark (`benchmarks/backfill.py --days 366 --event-log consolidated|pooled`,
2026-11-27) the stock class took a median 115 s (84 s CPU) against 54 s (49 s CPU) with this one.

It reaches into Dagster's internals, which the public API does not cover: the class's import
path, `_connect` (through which `run_connection` and `index_connection` open every connection)
and `_conn_string` (the file's SQLAlchemy URL). `flower_assets_tests/test_instance_storage.py`
pins each of them and proves the pooling and `synchronous=NORMAL` on the connections the
storage really uses, so a Dagster upgrade that moves any of them fails CI instead of silently
making backfills slow again.

Creation under a lock. Dagster creates its SQLite storages when a process first opens a new
instance, and two processes doing that at once corrupt it: two `alembic_version` rows in runs.db
(every later command fails with "more than one head present"), or one process killed by
`UNIQUE constraint failed` / `table ... already exists`. So each storage class here opens its
file under an inter-process lock, `fcntl.flock` on `.instance.lock` in the instance directory:
two CLI commands, two daemons, `dagster dev` next to the CLI all go through the classes that
dagster.yaml names, and the second waits (saying so after a second) while the first creates.
Run and schedule storages are Dagster's own, in Dagster's default places; the subclasses only
add the lock. Under it each storage is also checked for the damage a race left before this lock
existed (`InstanceDamaged`, a one-line message with the repair command).

Batches in one transaction. With `DAGSTER_EVENT_BATCH_SIZE` set in a run's process, Dagster
hands some events to `store_event_batch` together: a run's planned events (one per asset and
date, one per check) and the materializations of a ranged output (one per date). Dagster's SQL
base class stores them one by one; `store_event_batch` here writes a batch as dagster-postgres
does (one multi-row insert into event_logs, the asset tags in one statement, the asset_keys row
once per asset and event type) and in one transaction, with the same rows as storing them one
by one (`flower_assets_tests/test_event_batch.py` compares every table). Dagster's own writer
of the planned checks' rows joins that transaction through `_connect`; a batch that fails leaves
nothing, and Dagster then stores its events one by one. Where the variable is set: where the
code location is loaded, `flower_assets/settings.py` `apply_event_batching`. Of the ~28 events a
date records, 8 come in batches (4 planned, 4 output materializations); on
`benchmarks/backfill.py --days 100 --sample 0` (2026-12-04, a busy 2-core machine, 6 runs each
way) the backfill took 22.8 s CPU and a median 34.7 s wall one by one, 21.3 s and 29.7 s
batched; storing events (timed in 4 runs each way) 7.0 s CPU (11.4 s wall) against 5.3 s (8.0 s).

Asset check states, checkpointed. The UI's Checks tab asks the event log for each partitioned
check's `AssetCheckState`; Dagster's open-source storages rebuild it from every date's record on
every request (~6 s for the checks page at full history). The event log class here mixes in
`CheckpointedCheckState` (flower_assets/check_state_checkpoint.py): a checkpoint of each check's
state in `event_log.db` itself, table `flower_asset_check_state`, to which a request folds in
only the dates that changed, and which is rebuilt whenever what it was computed from changed.
The PostgreSQL event log gets the same mixin (flower_assets/instance_storage_postgres.py). Design
and numbers: docs/check-state-checkpoint.md; flower_assets_tests/test_check_state_checkpoint.py
checks it against Dagster's own computation and pins the internals it relies on.

Used by the repo's `dagster.yaml`. Production runs on PostgreSQL (`deploy/postgres/dagster.yaml`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import closing, contextmanager

import sqlalchemy as sa
from dagster import StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, BATCH_WRITABLE_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._serdes import ConfigurableClassData

from flower_assets.check_state_checkpoint import CheckpointedCheckState

# How long a connection waits for another process's write lock, as Dagster's SQLite storages do.
BUSY_TIMEOUT_S = 30
# The instance's creation lock, in the instance directory.
LOCK_FILE_NAME = ".instance.lock"
# A wait for the lock longer than this is announced (creating a new instance takes ~0.5 s).
WAIT_NOTICE_S = 1.0
# Where Dagster keeps each SQLite storage by default: (directory under the instance, file).
RUNS_DB = ("history", "runs.db")
EVENT_LOG_DB = ("", "event_log.db")
SCHEDULES_DB = ("schedules", "schedules.db")

TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table'"
# Rows per multi-row insert of a batch: 7 bound values a row, far below SQLite's 32,766.
BATCH_INSERT_ROWS = 500

log = logging.getLogger(__name__)


class InstanceDamaged(Exception):
    """A storage of the instance is damaged; the one-line message says how to repair it."""


@contextmanager
def creating(instance_dir: str) -> Iterator[None]:
    """Hold the instance's creation lock: one process at a time opens (and so creates) a storage.

    The lock is `flock` on an open file: the kernel drops it when its process ends, however it
    ends, so no lock outlives a killed process. The holder writes its pid into the file, for the
    message of a process that has to wait.
    """
    os.makedirs(instance_dir, exist_ok=True)
    fd = os.open(os.path.join(instance_dir, LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            notice = threading.Timer(WAIT_NOTICE_S, _say_waiting, (holder, instance_dir))
            notice.daemon = True
            notice.start()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            finally:
                notice.cancel()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _say_waiting(holder: str, instance_dir: str) -> None:
    who = f"another process (pid {holder})" if holder.isdigit() else "another process"
    log.warning("waiting for %s to finish creating the Dagster instance in %s", who, instance_dir)


def check_not_damaged(instance_dir: str, db: tuple[str, str], tables: Collection[str] = ()) -> None:
    """Raise InstanceDamaged if the storage file exists and is left damaged by an unlocked race
    (two alembic_version rows) or a stopped creation (some of `tables` missing)."""
    path = os.path.join(instance_dir, *db)
    if not os.path.exists(path):
        return
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as connection:
        found = {name for (name,) in connection.execute(TABLES_SQL)}
        versions = (
            [v for (v,) in connection.execute("SELECT version_num FROM alembic_version")]
            if "alembic_version" in found
            else []
        )
    where = f"The Dagster instance in {instance_dir} is damaged: {path}"
    aside = os.path.join(os.path.dirname(path), "damaged")
    move_aside = f"mkdir -p {shlex.quote(aside)} && mv {shlex.quote(path)}* {shlex.quote(aside)}/"
    if len(versions) > 1:
        head = head_revision()
        repair = (
            f'sqlite3 {shlex.quote(path)} "DELETE FROM alembic_version '
            f"WHERE version_num <> '{head}'\""
            if head in versions
            else move_aside
        )
        raise InstanceDamaged(
            f"{where} has {len(versions)} alembic_version rows ({', '.join(versions)}) where "
            f"Dagster keeps one: two processes created it at the same time, and every command "
            f"fails on it. Repair it with: {repair}"
        )
    missing = set(tables) - found
    if missing:
        raise InstanceDamaged(
            f"{where} was left half-created ({len(missing)} of its {len(set(tables))} tables "
            f"missing) by a process stopped while it created it, and Dagster never finishes it; "
            f"moved aside, it is created anew by the next command. Repair it with: {move_aside}"
        )


def head_revision() -> str:
    """The schema revision Dagster stamps a new SQLite storage with (one for all of them)."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    config = get_alembic_config(sqlite_run_storage.__file__)
    return ScriptDirectory.from_config(config).as_revision_number("head")


def _event_log_tables() -> set[str]:
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata

    return set(SqlEventLogStorageMetadata.tables)


class _CreatedUnderLock:
    """A SQLite storage in `<instance_dir>/<file>` as Dagster puts it by default, opened (and so
    created) under the instance's creation lock, and refused with a repair hint if damaged."""

    FILE: tuple[str, ...]  # RUNS_DB or SCHEDULES_DB

    @classmethod
    def config_type(cls):
        return {"instance_dir": StringSource}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value):
        instance_dir = config_value["instance_dir"]
        with creating(instance_dir):
            check_not_damaged(instance_dir, cls.FILE)
            return cls.from_local(os.path.join(instance_dir, cls.FILE[0]), inst_data=inst_data)


class LockedSqliteRunStorage(_CreatedUnderLock, SqliteRunStorage):
    """Dagster's SQLite run storage, in `<instance_dir>/history/runs.db`, created under the lock."""

    FILE = RUNS_DB


class LockedSqliteScheduleStorage(_CreatedUnderLock, SqliteScheduleStorage):
    """Dagster's SQLite schedule storage, in `<instance_dir>/schedules/schedules.db`, created
    under the lock."""

    FILE = SCHEDULES_DB


def _tune(connection: sqlite3.Connection, _record: object) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(CheckpointedCheckState, ConsolidatedSqliteEventLogStorage):
    """One consolidated SQLite event log, with one pooled engine per process, opened (and so
    created) under the instance's creation lock, with asset check states checkpointed in it.

    SQLite commits one writer at a time and gives ids in commit order: every id up to the
    highest one read is final at once (the mixin's default `_mark_settled`)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Keyed by process id: a forked child must not reuse its parent's open connections.
        self._engines: dict[int, sa.Engine] = {}
        # The connection of the batch this thread is writing (`store_event_batch`), if any.
        self._batch = threading.local()
        # Tables found present (`has_table`): migrations add tables, nothing drops one.
        self._tables_present: set[str] = set()
        # Dagster creates the file's tables only when the file does not exist yet.
        with creating(base_dir):
            check_not_damaged(base_dir, EVENT_LOG_DB, _event_log_tables())
            super().__init__(base_dir, inst_data)

    def _engine(self) -> sa.Engine:
        engine = self._engines.get(os.getpid())
        if engine is None:
            engine = sa.create_engine(self._conn_string, connect_args={"timeout": BUSY_TIMEOUT_S})
            sa.event.listen(engine, "connect", _tune)
            self._engines[os.getpid()] = engine
        return engine

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        # Inside a batch, Dagster's own writers (the planned checks' rows) join its transaction.
        joined = getattr(self._batch, "connection", None)
        if joined is not None:
            yield joined
            return
        with self._engine().connect() as connection, connection.begin():
            yield connection

    def has_table(self, table_name: str) -> bool:
        """Whether the event log file has the table: Dagster asks for every asset event (its
        tags) on a new engine and connection each time (~1 ms, about a fifth of storing an
        event); asked here on the pooled engine, and a table found is remembered."""
        if table_name in self._tables_present:
            return True
        with self._connect() as connection:
            present = bool(connection.dialect.has_table(connection, table_name))
        if present:
            self._tables_present.add(table_name)
        return present

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store the events Dagster batches in one transaction, with the rows of `store_event`.

        As dagster-postgres's `store_event_batch`: one insert of the events, one of their asset
        tags, the asset_keys row once per asset; here any batchable events (planned ones too) and
        everything in one transaction. Anything else is left to Dagster's one-by-one loop.
        """
        types = {event.dagster_event_type for event in events}
        if len(events) < 2 or not types <= BATCH_WRITABLE_EVENTS:
            super().store_event_batch(events)
            return
        with self._connect() as connection:
            self._batch.connection = connection
            try:
                self._store_batch(connection, events)
            finally:
                self._batch.connection = None

    def _store_batch(self, connection: sa.Connection, events: Sequence[EventLogEntry]) -> None:
        ids: list[int] = []
        for start in range(0, len(events), BATCH_INSERT_ROWS):
            chunk = events[start : start + BATCH_INSERT_ROWS]
            insert = self.prepare_insert_event_batch(chunk).returning(SqlEventLogStorageTable.c.id)
            # SQLite gives the rows of one insert ascending ids in VALUES order (one writer at a
            # time, inside this transaction), but RETURNING lists them in no promised order.
            ids += sorted(row[0] for row in connection.execute(insert))
        if len(ids) != len(events):
            raise RuntimeError(f"stored {len(ids)} of a batch of {len(events)} events")
        stored = list(zip(events, ids, strict=True))
        assets = [
            (event, event_id)
            for event, event_id in stored
            if event.dagster_event_type in ASSET_EVENTS and event.get_dagster_event().asset_key
        ]
        if assets:
            self._store_asset_event_tags(connection, *zip(*assets, strict=True))
            # Each event type sets its own columns of the asset's row: applying the last event
            # of each type, in batch order, leaves the row as applying every event does.
            last: dict[tuple, tuple[int, EventLogEntry, int]] = {}
            for position, (event, event_id) in enumerate(assets):
                key = (event.get_dagster_event().asset_key, event.dagster_event_type)
                last[key] = (position, event, event_id)
            for _, event, event_id in sorted(last.values(), key=lambda item: item[0]):
                self._store_asset_event(connection, event, event_id)
        for event, event_id in stored:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                # Dagster's own writer; its index_connection joins this transaction (`_connect`).
                self.store_asset_check_event(event, event_id)

    def dispose(self) -> None:
        super().dispose()
        engine = self._engines.pop(os.getpid(), None)
        if engine is not None:
            engine.dispose()
