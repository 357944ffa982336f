"""The raw response cache: each date's answer per category as the API sent it
(`api_raw_responses`), replayed instead of asked again outside the correction window."""

from __future__ import annotations

from datetime import date

import polars as pl
import sqlalchemy as sa

from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import API_RESPONSES
from flower_assets.warehouse.tables import core

_RESPONSES = core(API_RESPONSES)
_OF_ANSWER = sa.and_(
    _RESPONSES.c.auction_date == sa.bindparam("day"),
    _RESPONSES.c.flower_gubn == sa.bindparam("flower_gubn"),
)
_DELETE = sa.delete(_RESPONSES).where(_OF_ANSWER)
_PAGES = (
    sa.select(*(_RESPONSES.c[name] for name in API_RESPONSES.columns))
    .where(_OF_ANSWER)
    .order_by(_RESPONSES.c.page)
)


class ResponseCache:
    """The response cache of one warehouse."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def replace(self, day: date, flower_gubn: str, pages: pl.DataFrame) -> None:
        """Store one category's answer for a date, replacing any earlier one."""
        with self.warehouse.transaction() as tx:
            # Two runs caching the same date at once: without the lock both delete, then the
            # second insert fails on the first's rows (a unique violation, not an answer).
            tx.lock_partition(API_RESPONSES, day)
            tx.execute(_DELETE, day=day, flower_gubn=flower_gubn)
            tx.insert(API_RESPONSES, pages.select(API_RESPONSES.columns))

    def pages(self, day: date, flower_gubn: str) -> pl.DataFrame:
        """The cached pages of one category and date, in page order (empty if none)."""
        return self.warehouse.query(
            _PAGES, API_RESPONSES.polars_schema, day=day, flower_gubn=flower_gubn
        )

    def dates(self, first: date, last: date) -> set[tuple[date, str]]:
        """(auction date, category) pairs the cache can answer."""
        frame = self.warehouse.read_range(
            API_RESPONSES, first, last, ["auction_date", "flower_gubn"]
        )
        return set(frame.unique().rows())
