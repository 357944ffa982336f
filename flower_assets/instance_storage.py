"""The embedded instance's event log: Dagster's consolidated SQLite log, made cheap per event.

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

Used by the repo's `dagster.yaml`. Production runs on PostgreSQL (`deploy/postgres/dagster.yaml`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager

import sqlalchemy as sa
from dagster import StringSource
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
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
        with self._engine().connect() as connection, connection.begin():
            yield connection

    def dispose(self) -> None:
        super().dispose()
        engine = self._engines.pop(os.getpid(), None)
        if engine is not None:
            engine.dispose()
