"""The batch logs: one row per run and auction date (and asset), written however the date ends.

`flower_batch_upload_logs` says what the raw step fetched and stored; `flower_batch_process_logs`
what each normalizing step loaded. Their statuses and content hashes are what the
unchanged-content rule (`flower_assets.transform.unchanged`) reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from flower_assets.source.client import redact
from flower_assets.transform import unchanged
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import PROCESS_LOGS, Table


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BatchLog:
    """One batch-log row being filled in while a date is processed."""

    table: Table
    values: dict
    started_at: datetime = field(default_factory=now)
    # How the date ended when the block ends normally, and why (for `blocked`).
    status: str = unchanged.LOADABLE
    note: str | None = None


@contextmanager
def batch_log(
    warehouse: Warehouse,
    table: Table,
    run_id: str,
    day: date,
    secret: str | None = None,
    **defaults: object,
) -> Iterator[BatchLog]:
    """Write the date's log row when the block ends, on success and on failure alike."""
    log = BatchLog(table, {"run_id": run_id, "auction_date": day, **defaults})
    try:
        yield log
    except BaseException as exc:
        _write_log(warehouse, log, "failed", redact(f"{type(exc).__name__}: {exc}", secret))
        raise
    _write_log(warehouse, log, log.status, redact(log.note, secret) if log.note else None)


def process_log(
    warehouse: Warehouse, run_id: str, asset: str, day: date, raw_hash: str | None
) -> AbstractContextManager[BatchLog]:
    """The flower_batch_process_logs row of one normalizing asset and date."""
    return batch_log(
        warehouse,
        PROCESS_LOGS,
        run_id,
        day,
        asset=asset,
        new_items=0,
        new_varieties=0,
        auction_rows_affected=0,
        raw_content_hash=raw_hash,
    )


def _write_log(warehouse: Warehouse, log: BatchLog, status: str, error: str | None) -> None:
    row = {
        **log.values,
        "status": status,
        "error_text": error,
        "started_at": log.started_at,
        "finished_at": now(),
    }
    columns = [c for c in log.table.columns if c != "id"]
    try:
        warehouse.append(
            log.table, pl.DataFrame([row], schema={c: log.table.polars_schema[c] for c in columns})
        )
    except Exception as exc:  # the original failure matters more than its log row
        if status != "failed":
            raise
        logging.getLogger(__name__).warning(f"could not write {log.table.name} row: {exc}")
