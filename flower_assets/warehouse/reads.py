"""Reading the warehouse's tables: a date, a range of dates, a whole table, counts."""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import TYPE_CHECKING

import polars as pl
import sqlalchemy as sa

from flower_assets.market.prices import RECORD_COLUMNS
from flower_assets.warehouse import statements
from flower_assets.warehouse.schemas import BIDDING, FLOWER_TYPES, FLOWERS, RAW, Table
from flower_assets.warehouse.tables import core

if TYPE_CHECKING:
    from flower_assets.warehouse.connection import Database

_DATE = {"auction_date": pl.Date}


@cache
def _whole(table: str, columns: tuple[str, ...]) -> sa.Select:
    t = core(table)
    order = [t.c.id] if "id" in t.c else [t.c[name] for name in columns]
    return statements.select_columns(table, columns).order_by(*order)


@cache
def _count(table: str) -> sa.Select:
    return sa.select(sa.func.count()).select_from(core(table))


@cache
def _extreme(table: str, which: str) -> sa.Select:
    return sa.select(getattr(sa.func, which)(core(table).c.auction_date))


_LATEST_AUCTION_BEFORE = sa.select(sa.func.max(core(RAW).c.auction_date)).where(
    core(RAW).c.auction_date < statements.DAY
)


@cache
def _holds_rows(table: str) -> sa.Select:
    t = core(table)
    return sa.select(sa.exists().where(t.c.auction_date == statements.DAY))


@cache
def _per_date_and_category(table: str) -> sa.Select:
    t = core(table)
    return (
        sa.select(t.c.auction_date, t.c.flower_gubn, sa.func.count())
        .where(t.c.auction_date >= statements.FIRST, t.c.auction_date <= statements.LAST)
        .group_by(t.c.auction_date, t.c.flower_gubn)
    )


_b, _f, _t = core(BIDDING), core(FLOWERS), core(FLOWER_TYPES)
_RECORDS_WITH_MASTERS = _b.join(_f, _f.c.id == _b.c.flower_id).join(
    _t, _t.c.id == _f.c.flower_type_id
)
# The auction records of auction dates first..last with their item and variety: the market
# layer's input (flower_assets.market.prices.RECORD_COLUMNS).
_MARKET_RECORDS = (
    sa.select(
        _b.c.auction_date,
        _t.c.flower_gubn,
        _t.c.id.label("flower_type_id"),
        _t.c.name.label("item_name"),
        _b.c.flower_id,
        _f.c.name.label("variety_name"),
        _b.c.grade,
        _b.c.quantity,
        _b.c.avg_price,
        _b.c.total_price,
    )
    .select_from(_RECORDS_WITH_MASTERS)
    .where(_b.c.auction_date >= statements.FIRST, _b.c.auction_date <= statements.LAST)
)
# Every auction date on which each category traded, up to a date: the links of the category
# price index's chain.
_CATEGORY_DATES = (
    sa.select(_b.c.auction_date, _t.c.flower_gubn)
    .distinct()
    .select_from(_RECORDS_WITH_MASTERS)
    .where(_b.c.auction_date <= statements.LAST)
)


class TableReads:
    """Reads of the warehouse's tables; every one is a single query."""

    db: Database

    def read_partition(self, table: Table, auction_date: date) -> pl.DataFrame:
        query = statements.partition(table.name, tuple(table.columns))
        return self.db.query(query, table.polars_schema, day=auction_date)

    def read_range(self, table: Table, first: date, last: date, columns: list[str]) -> pl.DataFrame:
        """The given columns of a partitioned table for auction dates first..last."""
        query = statements.date_range(table.name, tuple(columns))
        schema = {name: table.polars_schema[name] for name in columns}
        return self.db.query(query, schema, first=first, last=last)

    def read_table(self, table: Table) -> pl.DataFrame:
        """The whole table, by id (or by all its columns if it has none)."""
        return self.db.query(_whole(table.name, tuple(table.columns)), table.polars_schema)

    def row_count(self, table: Table) -> int:
        """The table's number of rows, counted by the database (no row is read)."""
        return int(self.db.fetch(_count(table.name))[0][0])

    def last_auction_date(self, table: Table) -> date | None:
        """The latest auction date a partitioned table holds, or None if it is empty."""
        return self.db.query(_extreme(table.name, "max"), _DATE)["auction_date"][0]

    def first_auction_date(self, table: Table) -> date | None:
        """The earliest auction date a partitioned table holds, or None if it is empty."""
        return self.db.query(_extreme(table.name, "min"), _DATE)["auction_date"][0]

    def latest_auction_before(self, day: date) -> date | None:
        """The latest auction date before `day` whose answer held any rows, or None."""
        return self.db.query(_LATEST_AUCTION_BEFORE, _DATE, day=day)["auction_date"][0]

    def holds_rows(self, table: Table, auction_date: date) -> bool:
        """Whether a partitioned table holds any row of the auction date."""
        return bool(self.db.fetch(_holds_rows(table.name), day=auction_date)[0][0])

    def rows_per_date_and_category(self, table: Table, first: date, last: date) -> pl.DataFrame:
        """`auction_date, flower_gubn, rows` for first..last, counted by the database."""
        schema = {"auction_date": pl.Date, "flower_gubn": pl.String, "rows": pl.Int64}
        return self.db.query(_per_date_and_category(table.name), schema, first=first, last=last)

    def traded_varieties(self, first: date, last: date) -> pl.DataFrame:
        """`auction_date, flower_id, flower_type_id` that stored auction records reference."""
        records = self.read_range(BIDDING, first, last, ["auction_date", "flower_id"]).unique()
        varieties = self.read_table(FLOWERS).select(
            pl.col("id").alias("flower_id"), "flower_type_id"
        )
        return records.join(varieties, on="flower_id", how="left")

    def market_records(self, first: date, last: date) -> pl.DataFrame:
        """Auction records of first..last with their item and variety (`RECORD_COLUMNS`)."""
        return self.db.query(_MARKET_RECORDS, RECORD_COLUMNS, first=first, last=last)

    def category_dates(self, last: date) -> pl.DataFrame:
        """`auction_date, flower_gubn`: each date up to `last` on which a category traded."""
        schema = {"auction_date": pl.Date, "flower_gubn": pl.String}
        return self.db.query(_CATEGORY_DATES, schema, last=last)
