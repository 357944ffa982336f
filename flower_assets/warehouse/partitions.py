"""Writing auction-date partitions: each date's rows replaced whole, in one transaction, and the
raw answer's corrections recorded as they happen.

A failure leaves the date's previous version whole. Two writers of one date take turns (the
partition lock), so neither deletes rows the other is inserting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING

import polars as pl
import sqlalchemy as sa

from flower_assets.transform import revisions
from flower_assets.transform.unchanged import content_hash as content_hash_of
from flower_assets.warehouse import statements
from flower_assets.warehouse.masters import refresh_seen_dates
from flower_assets.warehouse.schemas import (
    BIDDING,
    CORRECTIONS,
    RAW,
    RECORD_DIGESTS,
    REJECTED,
    Table,
)
from flower_assets.warehouse.tables import core

if TYPE_CHECKING:
    from flower_assets.warehouse.connection import Database, Transaction

_VARIETIES_OF_DATE = (
    sa.select(core(BIDDING).c.flower_id)
    .distinct()
    .where(core(BIDDING).c.auction_date == statements.DAY)
)


def insertable(table: Table) -> list[str]:
    """The columns a new row gives: all but a primary key the database assigns."""
    return [c for c in table.columns if c != table.meta.get("primary_key")]


def replace(tx: Transaction, auction_date: date, frames: Mapping[Table, pl.DataFrame]) -> None:
    """Inside a transaction: each table's rows of the date replaced by its frame."""
    for table, frame in frames.items():
        tx.lock_partition(table, auction_date)
        tx.execute(statements.delete_partition(table.name), day=auction_date)
        if frame.height:
            tx.insert(table, frame.select(table.columns))


class PartitionWrites:
    """Replacing auction dates, and reading back what the corrections changed."""

    db: Database
    read_partition: Callable[[Table, date], pl.DataFrame]

    def replace_partition(self, auction_date: date, frames: Mapping[Table, pl.DataFrame]) -> None:
        """Replace the auction date's rows of each table with the frames, in one transaction."""
        with self.db.transaction() as tx:
            replace(tx, auction_date, frames)

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
        with self.db.transaction() as tx:
            tx.lock_partition(RAW, auction_date)
            stored = tx.frame(
                statements.partition(RAW.name, tuple(RAW.columns)),
                RAW.polars_schema,
                day=auction_date,
            )
            corrections = corrections_for(stored)
            replace(tx, auction_date, {RAW: raw})
            if corrections.height:
                tx.insert(CORRECTIONS, corrections.select(insertable(CORRECTIONS)))
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
        with self.db.transaction() as tx:
            before = tx.frame(_VARIETIES_OF_DATE, {"flower_id": pl.Int64}, day=auction_date)
            replace(
                tx, auction_date, {BIDDING: records, REJECTED: rejected, RECORD_DIGESTS: digests}
            )
            if before.height:
                refresh_seen_dates(tx, before["flower_id"].to_list())

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

    def corrected_dates(self, run_ids: list[str]) -> list[date]:
        """Auction dates whose answer the given runs corrected (auction_corrections)."""
        if not run_ids:
            return []
        t = core(CORRECTIONS)
        query = sa.select(t.c.auction_date).distinct().where(t.c.run_id.in_(run_ids))
        return self.db.query(query, {"auction_date": pl.Date})["auction_date"].to_list()
