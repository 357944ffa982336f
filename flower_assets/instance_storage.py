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

Used by the repo's `dagster.yaml`. Production runs on PostgreSQL (`deploy/postgres/dagster.yaml`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage

# How long a connection waits for another process's write lock, as Dagster's SQLite storages do.
BUSY_TIMEOUT_S = 30


def _tune(connection: sqlite3.Connection, _record: object) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """One consolidated SQLite event log, with one pooled engine per process."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        # Keyed by process id: a forked child must not reuse its parent's open connections.
        self._engines: dict[int, sa.Engine] = {}
        super().__init__(*args, **kwargs)

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
