"""One connection to the warehouse, and everything in which SQLite and PostgreSQL differ.

Statements are SQLAlchemy Core, built from the tables `tables.py` derives. They are compiled once
per dialect and run on the DB-API connection itself (sqlite3, psycopg2), so the transactions are
exactly the drivers' own: `BEGIN IMMEDIATE` on SQLite, psycopg2's implicit one on PostgreSQL,
and rows come back as plain tuples, straight into polars.

What differs between the two, each in one place here:

- opening: the SQLite file in WAL mode; a libpq connection, opened again if the server ended it;
- transactions: the write lock up front on SQLite; a rollback only on a live PostgreSQL one;
- values: SQLite keeps dates and timestamps as ISO text;
- bulk insert: `executemany` on SQLite, `COPY … FROM STDIN` on PostgreSQL;
- bulk upsert: `executemany` on SQLite, `execute_values` pages on PostgreSQL;
- locks: a date's partition (nothing on SQLite, whose writers are already serialized; an
  advisory transaction lock on PostgreSQL) and market builds (a lock file; a session advisory
  lock);
- the upsert construct (`sqlite.insert` / `postgresql.insert`), for `ON CONFLICT` statements;
- what the schema holds (alembic_version, the table names).
"""

from __future__ import annotations

import fcntl
import io
import re
import sqlite3
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg2 as psycopg2_dialect
from sqlalchemy.sql.compiler import Compiled

from flower_assets.warehouse.schemas import Table
from flower_assets.warehouse.tables import core

# The advisory lock of market builds on PostgreSQL (any constant no other lock uses).
MARKET_LOCK_KEY = zlib.crc32(b"flower_assets market build")

_TIMESTAMP_TEXT = "%Y-%m-%dT%H:%M:%S%.6f+00:00"  # how SQLite keeps a timestamp (and COPY sends one)

# Each statement's compilation per dialect, shared by every connection of the process.
_COMPILED: dict[tuple[str, int], tuple[sa.Executable, Compiled]] = {}

ALEMBIC_VERSION = sa.table("alembic_version", sa.column("version_num", sa.Text))


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///path` URL (relative to the working directory, or absolute)."""
    path = url.split("sqlite:///", 1)[-1] if url.startswith("sqlite:///") else None
    if not path:
        raise ValueError(
            f"FLOWER_DATABASE_URL {url!r}: expected sqlite:///relative/or/absolute/path"
        )
    return path


def display_url(url: str) -> str:
    """The URL with any password replaced, fit for logs and metadata."""
    url = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
    # libpq also takes it as a parameter: ?password=… in a URL, password=… in a key=value DSN.
    return re.sub(r"(password\s*=\s*)[^&\s]*", r"\1***", url, flags=re.IGNORECASE)


class Transaction:
    """What a unit of work does inside one transaction (`Database.transaction`)."""

    def __init__(self, db: Database, cursor: Any) -> None:
        self.db, self.cursor = db, cursor

    def execute(self, statement: sa.Executable, **values: Any) -> int:
        """Run a statement; the number of rows it changed."""
        sql, params = self.db.bind(statement, values)
        self.cursor.execute(sql, params)
        return self.cursor.rowcount

    def frame(
        self, statement: sa.Executable, schema: Mapping[str, pl.DataType], **values: Any
    ) -> pl.DataFrame:
        sql, params = self.db.bind(statement, values)
        self.cursor.execute(sql, params)
        return self.db.frame(schema, self.cursor.fetchall())

    def insert(self, table: Table, frame: pl.DataFrame) -> None:
        """Add the frame's rows (its columns, in its order), in bulk."""
        if frame.height:
            self.db.insert(self.cursor, table, frame)

    def upsert(self, table: Table, statement: sa.Executable, frame: pl.DataFrame) -> None:
        """Run an `INSERT … ON CONFLICT` statement for every row of the frame, in bulk."""
        if frame.height:
            self.db.upsert(self.cursor, table, statement, frame)

    def lock_partition(self, table: Table, auction_date: date) -> None:
        """Held until the transaction ends: no other writer replaces the same date meanwhile."""
        self.db.lock_partition(self.cursor, table, auction_date)


class Database(ABC):
    """A DB-API connection to the warehouse and the statements' dialect."""

    dialect: sa.Dialect
    dialect_insert: Callable[..., Any]  # sqlite.insert or postgresql.insert: ON CONFLICT

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def location(self) -> str:
        return display_url(self.url)

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: committed on success, rolled back on any error."""

    # --- statements ------------------------------------------------------------------------

    def compiled(self, statement: sa.Executable) -> Compiled:
        """The statement compiled for this dialect: once per statement object, unless it holds
        its own list of values (an `IN` list), which is compiled with them each time."""
        found = _COMPILED.get((self.dialect.name, id(statement)))
        if found is not None:
            return found[1]
        # One row of parameters, never RETURNING: inserts are sent row by row or in bulk.
        kw = {"for_executemany": True} if isinstance(statement, sa.Insert) else {}
        compiled = statement.compile(dialect=self.dialect, **kw)
        if compiled.post_compile_params:
            return statement.compile(
                dialect=self.dialect, compile_kwargs={"render_postcompile": True}, **kw
            )
        # The statement is kept with its compilation: its id is never reused meanwhile.
        _COMPILED[self.dialect.name, id(statement)] = (statement, compiled)
        return compiled

    def bind(self, statement: sa.Executable, values: Mapping[str, Any]) -> tuple[str, tuple]:
        """The SQL text and positional parameters of a statement and its values."""
        compiled = self.compiled(statement)
        params = compiled.construct_params(values)
        return compiled.string, tuple(
            self.param(params[name]) for name in compiled.positiontup or []
        )

    def fetch(self, statement: sa.Executable, **values: Any) -> list[tuple]:
        with self.transaction() as tx:
            sql, params = self.bind(statement, values)
            tx.cursor.execute(sql, params)
            return tx.cursor.fetchall()

    def query(
        self, statement: sa.Executable, schema: Mapping[str, pl.DataType], **values: Any
    ) -> pl.DataFrame:
        """A SELECT's rows as a frame of the given schema."""
        return self.frame(schema, self.fetch(statement, **values))

    # --- values ----------------------------------------------------------------------------

    def param(self, value: Any) -> Any:
        return value

    def rows(self, frame: pl.DataFrame) -> list[tuple]:
        return frame.rows()

    def frame(self, schema: Mapping[str, pl.DataType], rows: list[tuple]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=dict(schema), orient="row")

    # --- bulk writes, locks ------------------------------------------------------------------

    @abstractmethod
    def insert(self, cursor: Any, table: Table, frame: pl.DataFrame) -> None: ...

    @abstractmethod
    def upsert(
        self, cursor: Any, table: Table, statement: sa.Executable, frame: pl.DataFrame
    ) -> None: ...

    @abstractmethod
    def lock_partition(self, cursor: Any, table: Table, auction_date: date) -> None: ...

    @abstractmethod
    @contextmanager
    def market_lock(self, say: Callable[[str], None]) -> Iterator[None]:
        """Held while a market build reads and writes: builds of one warehouse never overlap.

        Released when the block ends or the process dies. A build that has to wait says so.
        """

    # --- the schema ------------------------------------------------------------------------

    @abstractmethod
    def schema_revision(self) -> str | None:
        """alembic_version's revision: one query; None if the table is missing."""

    @abstractmethod
    def table_names(self) -> set[str]: ...

    def _revision(self) -> str | None:
        rows = self.fetch(sa.select(ALEMBIC_VERSION.c.version_num))
        return rows[0][0] if rows else None


def _journal_in_wal(conn: sqlite3.Connection, patience_s: float = 60.0) -> None:
    """Put the file in WAL mode (kept in the file: a no-op once any connection did it).

    On a new file two processes may switch it at once, and SQLite then answers one of them
    "database is locked" at once, without waiting in the busy handler: that one tries again.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_SQLITE_MASTER = sa.table("sqlite_master", sa.column("name", sa.Text), sa.column("type", sa.Text))


class SqliteDatabase(Database):
    dialect = sqlite.dialect(paramstyle="qmark")
    dialect_insert = staticmethod(sqlite.insert)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = Path(sqlite_path(url))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            _journal_in_wal(self._conn)
            # In WAL mode NORMAL never corrupts the file; it only skips an fsync per commit.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise ConnectionError(f"cannot open the warehouse {self.location}: {exc}") from None

    @property
    def location(self) -> str:
        return str(self.path.resolve())

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        cursor = self._conn.cursor()
        # IMMEDIATE takes the write lock up front: concurrent writers queue instead of deadlocking.
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield Transaction(self, cursor)
        except sqlite3.OperationalError as exc:
            self._conn.rollback()
            # sqlite3 says "attempt to write a readonly database" without saying which one.
            raise sqlite3.OperationalError(f"warehouse {self.location}: {exc}") from exc
        except BaseException:
            self._conn.rollback()
            raise
        else:
            self._conn.commit()
        finally:
            cursor.close()

    def fetch(self, statement: sa.Executable, **values: Any) -> list[tuple]:
        # A read needs no write lock: WAL readers see the last commit and block no writer.
        return self._conn.execute(*self.bind(statement, values)).fetchall()

    def param(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
        if isinstance(value, date):
            return value.isoformat()
        return value

    def rows(self, frame: pl.DataFrame) -> list[tuple]:
        return frame.with_columns(
            pl.col(pl.Date).dt.to_string("%Y-%m-%d"),
            pl.col(pl.Datetime).dt.to_string(_TIMESTAMP_TEXT),
        ).rows()

    def frame(self, schema: Mapping[str, pl.DataType], rows: list[tuple]) -> pl.DataFrame:
        # SQLite keeps dates and timestamps as ISO text.
        text_schema = {
            name: pl.String if dtype == pl.Date or isinstance(dtype, pl.Datetime) else dtype
            for name, dtype in schema.items()
        }
        frame = pl.DataFrame(rows, schema=text_schema, orient="row")
        return frame.with_columns(
            pl.col(name).str.to_date("%Y-%m-%d")
            if dtype == pl.Date
            else pl.col(name).str.to_datetime(time_zone="UTC", time_unit="us")
            for name, dtype in schema.items()
            if dtype == pl.Date or isinstance(dtype, pl.Datetime)
        )

    def insert(self, cursor: sqlite3.Cursor, table: Table, frame: pl.DataFrame) -> None:
        statement = _bulk_insert(table.name, tuple(frame.columns))
        cursor.executemany(self.compiled(statement).string, self.rows(frame))

    def upsert(
        self, cursor: sqlite3.Cursor, table: Table, statement: sa.Executable, frame: pl.DataFrame
    ) -> None:
        compiled = self.compiled(statement)
        _check_row_parameters(compiled, frame)
        cursor.executemany(compiled.string, self.rows(frame))

    def lock_partition(self, cursor: sqlite3.Cursor, table: Table, auction_date: date) -> None:
        pass  # BEGIN IMMEDIATE already serializes all writers.

    @contextmanager
    def market_lock(self, say: Callable[[str], None]) -> Iterator[None]:
        path = self.path.with_name(self.path.name + ".market-lock")
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"waiting for another market build of the warehouse {self.location} to end")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def schema_revision(self) -> str | None:
        try:
            return self._revision()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise sqlite3.OperationalError(f"warehouse {self.location}: {exc}") from exc
            return None

    def table_names(self) -> set[str]:
        query = sa.select(_SQLITE_MASTER.c.name).where(_SQLITE_MASTER.c.type == "table")
        return {row[0] for row in self.fetch(query)}


_PG_TABLES = sa.table(
    "pg_tables", sa.column("tablename", sa.Text), sa.column("schemaname", sa.Text)
)


class PostgresDatabase(Database):
    dialect = psycopg2_dialect.dialect(paramstyle="format")
    dialect_insert = staticmethod(postgresql.insert)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._conn = self._connect()

    def _connect(self) -> Any:
        import psycopg2

        # Accept SQLAlchemy-style URLs (postgresql+psycopg2://) as well as libpq ones.
        libpq_url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", self.url)
        try:
            return psycopg2.connect(libpq_url, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise ConnectionError(
                f"cannot connect to the warehouse {self.location}: {display_url(str(exc)).strip()}"
            ) from None

    @property
    def _live(self) -> Any:
        """The connection, opened again if the server ended it (a restart, a killed session):
        the date it was writing failed and rolled back; the next one starts afresh."""
        if self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        conn = self._live
        try:
            with conn.cursor() as cursor:
                yield Transaction(self, cursor)
        except BaseException:
            # A connection the server ended cannot roll back; its transaction is gone anyway,
            # and the error that ended it is the one to report.
            if not conn.closed:
                conn.rollback()
            raise
        conn.commit()

    def insert(self, cursor: Any, table: Table, frame: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False, datetime_format=_TIMESTAMP_TEXT)
        buffer.seek(0)
        # COPY has no Core construct: its text, with names quoted by the dialect.
        quote = self.dialect.identifier_preparer.quote
        columns = ", ".join(quote(name) for name in frame.columns)
        cursor.copy_expert(
            f"COPY {quote(table.name)} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer
        )

    def upsert(
        self, cursor: Any, table: Table, statement: sa.Executable, frame: pl.DataFrame
    ) -> None:
        from psycopg2.extras import execute_values

        compiled = self.compiled(statement)
        _check_row_parameters(compiled, frame)
        # execute_values sends pages of rows as one multi-row VALUES list: the statement's
        # single row of placeholders becomes the page's template.
        row = "(" + ", ".join("%s" for _ in frame.columns) + ")"
        sql = compiled.string
        if sql.count(f"VALUES {row}") != 1:
            raise ValueError(f"not a one-row INSERT … VALUES {row}: {sql}")
        execute_values(
            cursor, sql.replace(f"VALUES {row}", "VALUES %s"), self.rows(frame), page_size=1000
        )

    def lock_partition(self, cursor: Any, table: Table, auction_date: date) -> None:
        # Two runs replacing the same partition at once would both delete, then both insert.
        key = zlib.crc32(table.name.encode()) & 0x7FFFFFFF
        cursor.execute(*self.bind(_PARTITION_LOCK, {"key": key, "day": auction_date.toordinal()}))

    @contextmanager
    def market_lock(self, say: Callable[[str], None]) -> Iterator[None]:
        # A session lock: it outlives the build's transactions and dies with the connection.
        ((acquired,),) = self.fetch(_TRY_MARKET_LOCK)
        if not acquired:
            say(f"waiting for another market build of the warehouse {self.location} to end")
            self.fetch(_MARKET_LOCK)
        try:
            yield
        finally:
            self.fetch(_MARKET_UNLOCK)

    def schema_revision(self) -> str | None:
        import psycopg2.errors

        try:
            return self._revision()
        except psycopg2.errors.UndefinedTable:
            return None

    def table_names(self) -> set[str]:
        query = sa.select(_PG_TABLES.c.tablename).where(
            _PG_TABLES.c.schemaname == sa.func.current_schema()
        )
        return {row[0] for row in self.fetch(query)}


_PARTITION_LOCK = sa.select(
    sa.func.pg_advisory_xact_lock(
        sa.bindparam("key", type_=sa.Integer), sa.bindparam("day", type_=sa.Integer)
    )
)
_TRY_MARKET_LOCK = sa.select(sa.func.pg_try_advisory_lock(MARKET_LOCK_KEY))
_MARKET_LOCK = sa.select(sa.func.pg_advisory_lock(MARKET_LOCK_KEY))
_MARKET_UNLOCK = sa.select(sa.func.pg_advisory_unlock(MARKET_LOCK_KEY))

_BULK_INSERTS: dict[tuple[str, tuple[str, ...]], sa.Insert] = {}


def _bulk_insert(table_name: str, columns: tuple[str, ...]) -> sa.Insert:
    """`INSERT INTO table (columns) VALUES (one row of parameters)`, one object per shape."""
    key = (table_name, columns)
    if key not in _BULK_INSERTS:
        table = core(table_name)
        _BULK_INSERTS[key] = sa.insert(table).values({c: sa.bindparam(c) for c in columns})
    return _BULK_INSERTS[key]


def _check_row_parameters(compiled: Compiled, frame: pl.DataFrame) -> None:
    """Rows are sent as tuples: the statement's parameters must be the frame's columns."""
    if list(compiled.positiontup or []) != frame.columns:
        raise ValueError(f"parameters {compiled.positiontup} are not the columns {frame.columns}")


def connect(url: str) -> Database:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return SqliteDatabase(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    raise ValueError(
        f"FLOWER_DATABASE_URL {display_url(url)!r}: expected sqlite:///path or postgresql://…"
    )
