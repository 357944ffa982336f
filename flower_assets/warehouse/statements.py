"""Statements every part of the warehouse shares, built once per table with SQLAlchemy Core."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from flower_assets.warehouse.tables import core

DAY = sa.bindparam("day")
FIRST = sa.bindparam("first")
LAST = sa.bindparam("last")


@cache
def select_columns(table: str, columns: tuple[str, ...]) -> sa.Select:
    t = core(table)
    return sa.select(*(t.c[name] for name in columns))


@cache
def partition(table: str, columns: tuple[str, ...]) -> sa.Select:
    """The columns of one auction date's rows (`day`)."""
    return select_columns(table, columns).where(core(table).c.auction_date == DAY)


@cache
def date_range(table: str, columns: tuple[str, ...]) -> sa.Select:
    """The columns of auction dates `first`..`last`."""
    auction_date = core(table).c.auction_date
    return select_columns(table, columns).where(auction_date >= FIRST, auction_date <= LAST)


@cache
def delete_partition(table: str) -> sa.Delete:
    return sa.delete(core(table)).where(core(table).c.auction_date == DAY)
