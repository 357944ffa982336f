"""The warehouse: the same tables on a SQLite file (embedded default) or on PostgreSQL.

Partitioned tables are replaced one auction date at a time inside one transaction, so a failure
leaves the previous version whole. Bulk paths only: COPY on PostgreSQL, executemany on SQLite.
The tables themselves are made and changed only by the migrations (`migrate.py`).
"""

from __future__ import annotations

import fcntl
import io
import json
import re
import sqlite3
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from flower_assets.source.categories import every_category
from flower_assets.transform import revisions
from flower_assets.transform.unchanged import content_hash as content_hash_of
from flower_assets.warehouse.schemas import (
    API_CALL_COUNTS,
    API_RESPONSES,
    BIDDING,
    CORRECTIONS,
    FLOWERS,
    PROCESS_LOGS,
    RAW,
    RECORD_DIGESTS,
    REJECTED,
    UPLOAD_LOGS,
    WAREHOUSE_SOURCE,
    Table,
)

# The advisory lock of market builds on PostgreSQL (any constant no other lock uses).
MARKET_LOCK_KEY = zlib.crc32(b"flower_assets market build")

LIVE_SOURCE = "aT API"
SAMPLE_SOURCE = "sample data"


class WrongSource(Exception):
    """A run would mix sample data and the aT API's data in one warehouse."""


def _sql(dialect: str, name: str) -> str:
    return (
        resources.files("flower_assets.warehouse")
        .joinpath("sql", dialect, f"{name}.sql")
        .read_text()
    )


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


class Warehouse(ABC):
    """A connection to the warehouse with the operations the assets need."""

    dialect: str

    def __init__(self, url: str) -> None:
        self.url = url

    @staticmethod
    def open(url: str) -> Warehouse:
        """A connection to a warehouse at the code's schema revision (see `migrate`).

        At head this costs one query. An empty warehouse is upgraded to head first, under the
        migrations' lock; any other raises `migrate.SchemaNotCurrent` and nothing is written.
        """
        from flower_assets.warehouse import migrate

        warehouse = Warehouse.connect(url)
        try:
            revision = warehouse._schema_revision()
            empty = revision is None and not warehouse._table_names() & migrate.table_names()
            migrate.ensure_current(url, revision, empty)
        except BaseException:
            warehouse.close()
            raise
        return warehouse

    @staticmethod
    def connect(url: str) -> Warehouse:
        """A connection to the warehouse, whatever its schema revision."""
        scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
        if scheme == "sqlite":
            return SqliteWarehouse(url)
        if scheme in ("postgresql", "postgres"):
            return PostgresWarehouse(url)
        raise ValueError(
            f"FLOWER_DATABASE_URL {display_url(url)!r}: expected sqlite:///path or postgresql://…"
        )

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def location(self) -> str:
        return display_url(self.url)

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on any error."""

    @abstractmethod
    def _insert(self, cursor: Any, table: Table, frame: pl.DataFrame) -> None: ...

    @abstractmethod
    def _lock_partition(self, cursor: Any, table: Table, auction_date: date) -> None: ...

    @abstractmethod
    def _upsert(self, cursor: Any, sql_name: str, rows: list[tuple]) -> None: ...

    @abstractmethod
    def _fetch(self, sql: str, params: tuple = ()) -> list[tuple]: ...

    @abstractmethod
    @contextmanager
    def market_lock(self, say: Callable[[str], None]) -> Iterator[None]:
        """Held while a market build reads and writes: builds of one warehouse never overlap.

        Released when the block ends or the process dies. A build that has to wait says so.
        """

    @abstractmethod
    def _schema_revision(self) -> str | None:
        """alembic_version's revision: one query; None if the table is missing."""

    @abstractmethod
    def _table_names(self) -> set[str]: ...

    def replace_partition(self, auction_date: date, frames: Mapping[Table, pl.DataFrame]) -> None:
        """Replace the auction date's rows of each table with the frames, in one transaction."""
        with self.transaction() as cursor:
            self._replace(cursor, auction_date, frames)

    def replace_raw(
        self,
        auction_date: date,
        raw: pl.DataFrame,
        corrections_for: Callable[[pl.DataFrame], pl.DataFrame],
    ) -> pl.DataFrame:
        """Replace the date's raw rows and append `corrections_for(the rows replaced)`.

        One transaction, under the date's lock: the rows replaced are read inside it, so two
        runs storing the same date at once each record what they changed from the other's
        answer, never from a version already gone. Returns the corrections appended.
        """
        p = self._placeholder
        with self.transaction() as cursor:
            self._lock_partition(cursor, RAW, auction_date)
            cursor.execute(
                f"SELECT {', '.join(RAW.columns)} FROM {RAW.name} WHERE auction_date = {p}",
                (self._date_param(auction_date),),
            )
            corrections = corrections_for(self._frame(RAW.polars_schema, cursor.fetchall()))
            self._replace(cursor, auction_date, {RAW: raw})
            if corrections.height:
                self._insert(cursor, CORRECTIONS, corrections.select(self._insertable(CORRECTIONS)))
        return corrections

    def replace_records(
        self,
        auction_date: date,
        records: pl.DataFrame,
        rejected: pl.DataFrame,
        digests: pl.DataFrame,
    ) -> None:
        """Replace the date's auction records, quarantine and record digests, and correct the
        masters' seen dates.

        A correction can remove the first or last record of a variety: in the same transaction,
        the varieties the date's old records referenced (and their items) take their first and
        last seen dates from the records again, null where no record is left.
        """
        p = self._placeholder
        with self.transaction() as cursor:
            cursor.execute(
                f"SELECT DISTINCT flower_id FROM {BIDDING.name} WHERE auction_date = {p}",
                (self._date_param(auction_date),),
            )
            before = [row[0] for row in cursor.fetchall()]
            self._replace(
                cursor,
                auction_date,
                {BIDDING: records, REJECTED: rejected, RECORD_DIGESTS: digests},
            )
            if before:
                ids = self._id_list(before)
                cursor.execute(_sql(self.dialect, "refresh_variety_seen_dates"), (ids,))
                cursor.execute(_sql(self.dialect, "refresh_item_seen_dates"), (ids,))

    def _replace(
        self, cursor: Any, auction_date: date, frames: Mapping[Table, pl.DataFrame]
    ) -> None:
        for table, frame in frames.items():
            self._lock_partition(cursor, table, auction_date)
            cursor.execute(
                f"DELETE FROM {table.name} WHERE auction_date = {self._placeholder}",
                (self._date_param(auction_date),),
            )
            if frame.height:
                self._insert(cursor, table, frame.select(table.columns))

    def answer_as_of(self, auction_date: date, content_hash: str) -> pl.DataFrame:
        """The date's answer (`flower_gubn, raw_item`) as it was when its hash was `content_hash`.

        The stored raw rows with the date's corrections undone, newest first, until the answer
        is the one asked for; a hash the date never had is a LookupError.
        """
        answer = self.read_partition(RAW, auction_date).select("flower_gubn", "raw_item")
        corrections = self.read_partition(CORRECTIONS, auction_date)
        # One step per re-fetch that changed the date (a run fetches a date once).
        steps = corrections.group_by("run_id", "old_content_hash", "new_content_hash").agg(
            pl.col("id").max()
        )
        current = content_hash_of(answer)
        for run_id, old, new, _ in steps.sort("id", descending=True).rows():
            if current == content_hash or new != current:
                break
            step = corrections.filter(pl.col("run_id") == run_id)
            answer, current = revisions.undo(answer, step), old
        if current != content_hash:
            raise LookupError(
                f"{auction_date}: no stored or superseded answer has content hash {content_hash}"
            )
        return answer

    def upsert_items(self, items: pl.DataFrame) -> None:
        """Add new items and widen the seen dates of known ones (flower_types)."""
        self._upsert_master("upsert_flower_types", items, ["flower_gubn", "name"])

    def upsert_varieties(self, varieties: pl.DataFrame) -> None:
        """Add new varieties and widen the seen dates of known ones (flowers)."""
        self._upsert_master("upsert_flowers", varieties, ["flower_type_id", "name"])

    def _upsert_master(self, sql_name: str, frame: pl.DataFrame, key: list[str]) -> None:
        if not frame.height:
            return
        # A fixed order keeps two concurrent runs from deadlocking on each other's rows.
        rows = self._rows(frame.sort(key))
        with self.transaction() as cursor:
            self._upsert(cursor, sql_name, rows)

    def read_partition(self, table: Table, auction_date: date) -> pl.DataFrame:
        sql = f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE auction_date = {self._placeholder}"
        return self._frame(table.polars_schema, self._fetch(sql, (self._date_param(auction_date),)))

    def read_range(self, table: Table, first: date, last: date, columns: list[str]) -> pl.DataFrame:
        """The given columns of a partitioned table for auction dates first..last."""
        p = self._placeholder
        sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE auction_date >= {p} AND auction_date <= {p}"
        schema = {name: table.polars_schema[name] for name in columns}
        return self._frame(
            schema, self._fetch(sql, (self._date_param(first), self._date_param(last)))
        )

    def corrected_dates(self, run_ids: list[str]) -> list[date]:
        """Auction dates whose answer the given runs corrected (auction_corrections)."""
        if not run_ids:
            return []
        marks = ", ".join(self._placeholder for _ in run_ids)
        sql = f"SELECT DISTINCT auction_date FROM {CORRECTIONS.name} WHERE run_id IN ({marks})"
        return self._frame({"auction_date": pl.Date}, self._fetch(sql, tuple(run_ids)))[
            "auction_date"
        ].to_list()

    def last_auction_date(self, table: Table) -> date | None:
        """The latest auction date a partitioned table holds, or None if it is empty."""
        return self._auction_date(f"SELECT max(auction_date) FROM {table.name}")

    def first_auction_date(self, table: Table) -> date | None:
        """The earliest auction date a partitioned table holds, or None if it is empty."""
        return self._auction_date(f"SELECT min(auction_date) FROM {table.name}")

    def latest_auction_before(self, day: date) -> date | None:
        """The latest auction date before `day` whose answer held any rows, or None."""
        return self._auction_date(
            f"SELECT max(auction_date) FROM {RAW.name} WHERE auction_date < {self._placeholder}",
            (self._date_param(day),),
        )

    def _auction_date(self, sql: str, params: tuple = ()) -> date | None:
        return self._frame({"auction_date": pl.Date}, self._fetch(sql, params))["auction_date"][0]

    def read_sql(
        self, sql_name: str, params: tuple, schema: Mapping[str, pl.DataType]
    ) -> pl.DataFrame:
        """The rows of a query in `sql/<dialect>/<sql_name>.sql`; dates may be given as dates."""
        values = tuple(self._date_param(v) if isinstance(v, date) else v for v in params)
        return self._frame(dict(schema), self._fetch(_sql(self.dialect, sql_name), values))

    def rows_per_category(self, table: Table, auction_date: date) -> dict[str, int]:
        """One auction date's row count per category, counted by the database."""
        sql = (
            f"SELECT flower_gubn, count(*) FROM {table.name}"
            f" WHERE auction_date = {self._placeholder} GROUP BY flower_gubn"
        )
        return every_category(dict(self._fetch(sql, (self._date_param(auction_date),))))

    def rows_per_date_and_category(self, table: Table, first: date, last: date) -> pl.DataFrame:
        """`auction_date, flower_gubn, rows` for first..last, counted by the database."""
        p = self._placeholder
        sql = (
            f"SELECT auction_date, flower_gubn, count(*) FROM {table.name}"
            f" WHERE auction_date >= {p} AND auction_date <= {p} GROUP BY auction_date, flower_gubn"
        )
        schema = {"auction_date": pl.Date, "flower_gubn": pl.String, "rows": pl.Int64}
        return self._frame(
            schema, self._fetch(sql, (self._date_param(first), self._date_param(last)))
        )

    def traded_varieties(self, first: date, last: date) -> pl.DataFrame:
        """`auction_date, flower_id, flower_type_id` that stored auction records reference."""
        records = self.read_range(BIDDING, first, last, ["auction_date", "flower_id"]).unique()
        varieties = self.read_table(FLOWERS).select(
            pl.col("id").alias("flower_id"), "flower_type_id"
        )
        return records.join(varieties, on="flower_id", how="left")

    def append(self, table: Table, frame: pl.DataFrame) -> None:
        """Add rows to an append-only table (the batch logs); the database assigns ids."""
        with self.transaction() as cursor:
            self._insert(cursor, table, frame.select(self._insertable(table)))

    @staticmethod
    def _insertable(table: Table) -> list[str]:
        """The columns a new row gives: all but a primary key the database assigns."""
        return [c for c in table.columns if c != table.meta.get("primary_key")]

    def replace_cached_answer(self, day: date, flower_gubn: str, pages: pl.DataFrame) -> None:
        """Store one category's answer for a date, replacing any earlier one."""
        p = self._placeholder
        with self.transaction() as cursor:
            # Two runs caching the same date at once: without the lock both delete, then the
            # second insert fails on the first's rows (a unique violation, not an answer).
            self._lock_partition(cursor, API_RESPONSES, day)
            cursor.execute(
                f"DELETE FROM {API_RESPONSES.name} WHERE auction_date = {p} AND flower_gubn = {p}",
                (self._date_param(day), flower_gubn),
            )
            self._insert(cursor, API_RESPONSES, pages.select(API_RESPONSES.columns))

    def cached_answer(self, day: date, flower_gubn: str) -> pl.DataFrame:
        """The cached pages of one category and date, in page order (empty if none)."""
        p = self._placeholder
        sql = (
            f"SELECT {', '.join(API_RESPONSES.columns)} FROM {API_RESPONSES.name}"
            f" WHERE auction_date = {p} AND flower_gubn = {p} ORDER BY page"
        )
        return self._frame(
            API_RESPONSES.polars_schema, self._fetch(sql, (self._date_param(day), flower_gubn))
        )

    def claim_source(self, source: str) -> None:
        """Record what fills this warehouse on first use; refuse the other source after that.

        Sample rows in a production warehouse (or live rows in a sample one) would mix with the
        real ones and, through the response cache, be served again: refused before anything is
        fetched or written.
        """
        p = self._placeholder
        claim = pl.DataFrame(
            [{"slot": 1, "source": source, "claimed_at": datetime.now(UTC)}],
            schema=WAREHOUSE_SOURCE.polars_schema,
        )
        with self.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {WAREHOUSE_SOURCE.name} (slot, source, claimed_at)"
                f" VALUES ({p}, {p}, {p}) ON CONFLICT (slot) DO NOTHING",
                self._rows(claim)[0],
            )
        ((held, since),) = self._fetch(
            f"SELECT source, claimed_at FROM {WAREHOUSE_SOURCE.name} WHERE slot = 1"
        )
        if held != source:
            raise WrongSource(
                f"The warehouse {self.location} holds {held} (since {since}); this run would "
                f"write {source}. Nothing was fetched or written. "
                + (
                    "Set FLOWER_API_KEY to load live data here, or point FLOWER_DATABASE_URL at "
                    "another database to try the sample days."
                    if held == LIVE_SOURCE
                    else "Point FLOWER_DATABASE_URL at a warehouse of its own for the aT API's "
                    "data (or drop this one's tables to start over with live data)."
                )
            )

    def cached_dates(self, first: date, last: date) -> set[tuple[date, str]]:
        """(auction date, category) pairs the raw response cache can answer."""
        frame = self.read_range(API_RESPONSES, first, last, ["auction_date", "flower_gubn"])
        return set(frame.unique().rows())

    def reserve_api_call(self, key_fingerprint: str, kst_date: date, daily_quota: int) -> bool:
        """Count one call for the key and KST day if the count is below the quota.

        Atomic on both databases (a conditional upsert in its own transaction), so concurrent
        runs and processes together never count more than `daily_quota`. False: refused,
        nothing counted.
        """
        with self.transaction() as cursor:
            cursor.execute(
                _sql(self.dialect, "reserve_api_call"),
                (key_fingerprint, self._date_param(kst_date), daily_quota, daily_quota),
            )
            return cursor.rowcount == 1

    def api_calls_on(self, key_fingerprint: str, kst_date: date) -> int:
        p = self._placeholder
        rows = self._fetch(
            f"SELECT calls FROM {API_CALL_COUNTS.name} WHERE key_fingerprint = {p} AND kst_date = {p}",
            (key_fingerprint, self._date_param(kst_date)),
        )
        return int(rows[0][0]) if rows else 0

    def upload_logs(self, first: date, last: date, judged: bool = False) -> pl.DataFrame:
        """Upload log rows of auction dates first..last; `judged`: with the raw checks'
        outcomes (JSON), which only the raw checks read."""
        columns = [c for c in UPLOAD_LOGS.columns if judged or c != "raw_checks"]
        return self.read_range(UPLOAD_LOGS, first, last, columns)

    def batch_logs(self, first: date, last: date) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Upload and process log rows of auction dates first..last."""
        return (
            self.upload_logs(first, last),
            self.read_range(PROCESS_LOGS, first, last, PROCESS_LOGS.columns),
        )

    def read_table(self, table: Table) -> pl.DataFrame:
        order = "id" if "id" in table.columns else ", ".join(table.columns)
        sql = f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {order}"
        return self._frame(table.polars_schema, self._fetch(sql))

    def row_count(self, table: Table) -> int:
        """The table's number of rows, counted by the database (no row is read)."""
        return int(self._fetch(f"SELECT count(*) FROM {table.name}")[0][0])

    _placeholder = "?"

    def _id_list(self, ids: list[int]) -> Any:
        """Ids as one query parameter (a JSON array for SQLite's json_each)."""
        return json.dumps(ids)

    def _date_param(self, value: date) -> Any:
        return value

    def _rows(self, frame: pl.DataFrame) -> list[tuple]:
        return frame.rows()

    def _frame(self, schema: dict[str, pl.DataType], rows: list[tuple]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=schema, orient="row")


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


class SqliteWarehouse(Warehouse):
    dialect = "sqlite"

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
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        cursor = self._conn.cursor()
        # IMMEDIATE takes the write lock up front: concurrent writers queue instead of deadlocking.
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
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

    def _lock_partition(self, cursor: sqlite3.Cursor, table: Table, auction_date: date) -> None:
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

    def _date_param(self, value: date) -> str:
        return value.isoformat()

    def _rows(self, frame: pl.DataFrame) -> list[tuple]:
        return frame.with_columns(
            pl.col(pl.Date).dt.to_string("%Y-%m-%d"),
            pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
        ).rows()

    def _insert(self, cursor: sqlite3.Cursor, table: Table, frame: pl.DataFrame) -> None:
        marks = ", ".join("?" for _ in frame.columns)
        cursor.executemany(
            f"INSERT INTO {table.name} ({', '.join(frame.columns)}) VALUES ({marks})",
            self._rows(frame),
        )

    def _upsert(self, cursor: sqlite3.Cursor, sql_name: str, rows: list[tuple]) -> None:
        cursor.executemany(_sql(self.dialect, sql_name), rows)

    def _fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._conn.execute(sql, params).fetchall()

    def _schema_revision(self) -> str | None:
        try:
            rows = self._fetch("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise sqlite3.OperationalError(f"warehouse {self.location}: {exc}") from exc
            return None
        return rows[0][0] if rows else None

    def _table_names(self) -> set[str]:
        return {
            row[0] for row in self._fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def _frame(self, schema: dict[str, pl.DataType], rows: list[tuple]) -> pl.DataFrame:
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


class PostgresWarehouse(Warehouse):
    dialect = "postgres"
    _placeholder = "%s"

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
    def transaction(self) -> Iterator[Any]:
        conn = self._live
        try:
            with conn.cursor() as cursor:
                yield cursor
        except BaseException:
            # A connection the server ended cannot roll back; its transaction is gone anyway,
            # and the error that ended it is the one to report.
            if not conn.closed:
                conn.rollback()
            raise
        conn.commit()

    def _lock_partition(self, cursor: Any, table: Table, auction_date: date) -> None:
        # Two runs replacing the same partition at once would both delete, then both insert.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            (zlib.crc32(table.name.encode()) & 0x7FFFFFFF, auction_date.toordinal()),
        )

    def _insert(self, cursor: Any, table: Table, frame: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f+00:00")
        buffer.seek(0)
        cursor.copy_expert(
            f"COPY {table.name} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)", buffer
        )

    @contextmanager
    def market_lock(self, say: Callable[[str], None]) -> Iterator[None]:
        # A session lock: it outlives the build's transactions and dies with the connection.
        (acquired,) = self._fetch("SELECT pg_try_advisory_lock(%s)", (MARKET_LOCK_KEY,))[0]
        if not acquired:
            say(f"waiting for another market build of the warehouse {self.location} to end")
            self._fetch("SELECT pg_advisory_lock(%s)", (MARKET_LOCK_KEY,))
        try:
            yield
        finally:
            self._fetch("SELECT pg_advisory_unlock(%s)", (MARKET_LOCK_KEY,))

    def _id_list(self, ids: list[int]) -> Any:
        return ids  # psycopg2 sends a list as an array, for `= ANY(%s)`

    def _upsert(self, cursor: Any, sql_name: str, rows: list[tuple]) -> None:
        from psycopg2.extras import execute_values

        execute_values(cursor, _sql(self.dialect, sql_name), rows, page_size=1000)

    def _fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.transaction() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _schema_revision(self) -> str | None:
        import psycopg2.errors

        try:
            rows = self._fetch("SELECT version_num FROM alembic_version")
        except psycopg2.errors.UndefinedTable:
            return None
        return rows[0][0] if rows else None

    def _table_names(self) -> set[str]:
        rows = self._fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {row[0] for row in rows}
