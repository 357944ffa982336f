"""The warehouse: the same tables on a SQLite file (embedded default) or on PostgreSQL.

`Warehouse` is what the steps, checks and commands use. Its parts are small modules, each with
its own Core statements: `reads` (a date, a range, a table, counts), `partitions` (dates
replaced whole, corrections), `masters` (items and varieties), `claim` (which source fills the
warehouse) and `logs` (the batch logs). What differs between SQLite and PostgreSQL is in
`connection`. The API's response cache and quota are the source's (`flower_assets.source`), on
top of `transaction` and `query`. The tables themselves are made and changed only by the
migrations (`migrate.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import polars as pl
import sqlalchemy as sa

from flower_assets.warehouse import connection
from flower_assets.warehouse.claim import LIVE_SOURCE, SAMPLE_SOURCE, SourceClaim, WrongSource
from flower_assets.warehouse.connection import (
    MARKET_LOCK_KEY,
    Database,
    Transaction,
    display_url,
    sqlite_path,
)
from flower_assets.warehouse.logs import BatchLogs
from flower_assets.warehouse.masters import MasterUpserts
from flower_assets.warehouse.partitions import PartitionWrites
from flower_assets.warehouse.reads import TableReads

__all__ = [
    "LIVE_SOURCE",
    "MARKET_LOCK_KEY",
    "SAMPLE_SOURCE",
    "Warehouse",
    "WrongSource",
    "display_url",
    "sqlite_path",
]


class Warehouse(TableReads, PartitionWrites, MasterUpserts, SourceClaim, BatchLogs):
    """A connection to the warehouse with the operations the assets need."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def open(url: str) -> Warehouse:
        """A connection to a warehouse at the code's schema revision (see `migrate`).

        At head this costs one query. An empty warehouse is upgraded to head first, under the
        migrations' lock; any other raises `migrate.SchemaNotCurrent` and nothing is written.
        """
        from flower_assets.warehouse import migrate

        warehouse = Warehouse.connect(url)
        try:
            revision = warehouse.db.schema_revision()
            empty = revision is None and not warehouse.db.table_names() & migrate.table_names()
            migrate.ensure_current(url, revision, empty)
        except BaseException:
            warehouse.close()
            raise
        return warehouse

    @staticmethod
    def connect(url: str) -> Warehouse:
        """A connection to the warehouse, whatever its schema revision."""
        return Warehouse(connection.connect(url))

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def location(self) -> str:
        return self.db.location

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: committed on success, rolled back on any error."""
        with self.db.transaction() as tx:
            yield tx

    def query(
        self, statement: sa.Executable, schema: Mapping[str, pl.DataType], **values: Any
    ) -> pl.DataFrame:
        """A Core SELECT's rows as a frame of the given schema."""
        return self.db.query(statement, schema, **values)

    @contextmanager
    def market_lock(self, say: Callable[[str], None]) -> Iterator[None]:
        """Held while a market build reads and writes: builds of one warehouse never overlap.

        Released when the block ends or the process dies. A build that has to wait says so.
        """
        with self.db.market_lock(say):
            yield
