"""The batch logs: append-only rows of what each run fetched, stored and built, per date."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from flower_assets.warehouse.partitions import insertable
from flower_assets.warehouse.schemas import PROCESS_LOGS, UPLOAD_LOGS, Table

if TYPE_CHECKING:
    from flower_assets.warehouse.connection import Database


class BatchLogs:
    db: Database
    read_range: Callable[[Table, date, date, list[str]], pl.DataFrame]

    def append(self, table: Table, frame: pl.DataFrame) -> None:
        """Add rows to an append-only table (the batch logs); the database assigns ids."""
        with self.db.transaction() as tx:
            tx.insert(table, frame.select(insertable(table)))

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
