"""The item and variety masters (flower_types, flowers): they only grow, and ids never change.

A new item or variety is added; a known one widens its first and last seen dates; one whose
records a correction removed (seen dates null) is seen again. When a correction removes the
first or last record of a variety, its seen dates (and its item's) follow the records again.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa

from flower_assets.warehouse.schemas import BIDDING, FLOWER_TYPES, FLOWERS, Table
from flower_assets.warehouse.tables import core

if TYPE_CHECKING:
    from flower_assets.warehouse.connection import Database, Transaction

_SEEN = ["first_seen_date", "last_seen_date"]


@cache
def _upsert(insert: Any, table: str, key: tuple[str, ...]) -> sa.Insert:
    """`INSERT … ON CONFLICT (key) DO UPDATE` widening the seen dates, for one row of values."""
    t = core(table)
    columns = [*key, *_SEEN]
    statement = insert(t).values({name: sa.bindparam(name) for name in columns})
    new = statement.excluded
    earlier = sa.or_(t.c.first_seen_date.is_(None), new.first_seen_date < t.c.first_seen_date)
    later = sa.or_(t.c.last_seen_date.is_(None), new.last_seen_date > t.c.last_seen_date)
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={
            "first_seen_date": sa.case((earlier, new.first_seen_date), else_=t.c.first_seen_date),
            "last_seen_date": sa.case((later, new.last_seen_date), else_=t.c.last_seen_date),
        },
        # Unchanged rows are not written (nor locked longer than the statement).
        where=sa.or_(
            t.c.first_seen_date.is_(None),
            new.first_seen_date < t.c.first_seen_date,
            new.last_seen_date > t.c.last_seen_date,
        ),
    )


def refresh_seen_dates(tx: Transaction, variety_ids: list[int]) -> None:
    """The varieties' seen dates from their records again (null when none is left), then their
    items': an item trades on the dates any of its varieties trades."""
    records, varieties, items = core(BIDDING), core(FLOWERS), core(FLOWER_TYPES)
    of_variety = records.c.flower_id == varieties.c.id
    tx.execute(
        sa.update(varieties)
        .values(
            first_seen_date=sa.select(sa.func.min(records.c.auction_date))
            .where(of_variety)
            .scalar_subquery(),
            last_seen_date=sa.select(sa.func.max(records.c.auction_date))
            .where(of_variety)
            .scalar_subquery(),
        )
        .where(varieties.c.id.in_(variety_ids))
    )
    of_item = varieties.c.flower_type_id == items.c.id
    tx.execute(
        sa.update(items)
        .values(
            first_seen_date=sa.select(sa.func.min(varieties.c.first_seen_date))
            .where(of_item)
            .scalar_subquery(),
            last_seen_date=sa.select(sa.func.max(varieties.c.last_seen_date))
            .where(of_item)
            .scalar_subquery(),
        )
        .where(
            items.c.id.in_(
                sa.select(varieties.c.flower_type_id).where(varieties.c.id.in_(variety_ids))
            )
        )
    )


class MasterUpserts:
    """Growing the masters from the items and varieties a date's records name."""

    db: Database

    def upsert_items(self, items: pl.DataFrame) -> None:
        """Add new items and widen the seen dates of known ones (flower_types)."""
        self._upsert_master(FLOWER_TYPES, items, ("flower_gubn", "name"))

    def upsert_varieties(self, varieties: pl.DataFrame) -> None:
        """Add new varieties and widen the seen dates of known ones (flowers)."""
        self._upsert_master(FLOWERS, varieties, ("flower_type_id", "name"))

    def _upsert_master(self, table: Table, frame: pl.DataFrame, key: tuple[str, ...]) -> None:
        if not frame.height:
            return
        # A fixed order keeps two concurrent runs from deadlocking on each other's rows.
        rows = frame.select(*key, *_SEEN).sort(list(key))
        with self.db.transaction() as tx:
            tx.upsert(table, _upsert(self.db.dialect_insert, table.name, key), rows)
