"""Which source fills a warehouse: the aT API or the generated sample days, never both."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

import polars as pl
import sqlalchemy as sa

from flower_assets.warehouse.schemas import WAREHOUSE_SOURCE
from flower_assets.warehouse.tables import core

if TYPE_CHECKING:
    from flower_assets.warehouse.connection import Database

LIVE_SOURCE = "aT API"
SAMPLE_SOURCE = "sample data"

_SOURCE = core(WAREHOUSE_SOURCE)
_HELD = sa.select(_SOURCE.c.source, _SOURCE.c.claimed_at).where(_SOURCE.c.slot == 1)


class WrongSource(Exception):
    """A run would mix sample data and the aT API's data in one warehouse."""


@cache
def _claim(insert: object) -> sa.Insert:
    statement = insert(_SOURCE).values(  # type: ignore[operator]
        {name: sa.bindparam(name) for name in WAREHOUSE_SOURCE.columns}
    )
    return statement.on_conflict_do_nothing(index_elements=["slot"])


class SourceClaim:
    db: Database
    location: str

    def claim_source(self, source: str) -> None:
        """Record what fills this warehouse on first use; refuse the other source after that.

        Sample rows in a production warehouse (or live rows in a sample one) would mix with the
        real ones and, through the response cache, be served again: refused before anything is
        fetched or written.
        """
        claim = pl.DataFrame(
            [{"slot": 1, "source": source, "claimed_at": datetime.now(UTC)}],
            schema=WAREHOUSE_SOURCE.polars_schema,
        )
        with self.db.transaction() as tx:
            tx.upsert(WAREHOUSE_SOURCE, _claim(self.db.dialect_insert), claim)
        ((held, since),) = self.db.fetch(_HELD)
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
