"""Each auction date's raw rows split into loadable and rejected, kept in memory for the run.

The raw step splits every date it stores (its blocking check needs the rejected share), and the
three normalizing steps need that same split. Under the platform's in-process executor they run
in the raw step's process, so they take the split from here instead of reading the raw rows back
and judging every row again, which was three times the raw step's own quarantine work.

An entry is keyed by the warehouse, the auction date and the content hash of the raw rows the
upload log records as stored, so a step only ever uses the split of exactly the content in the
warehouse. Anything not here (another process, another run, an evicted entry) is read back and
split again: the cache changes the speed, never the result.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

import polars as pl

from flower_assets.transform.quarantine import split_loadable
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import RAW

# ~115 bytes a row without raw_item (measured): ~230 MB at most, a month of a 50x market.
MAX_ROWS = 2_000_000

# (warehouse location, auction date, content hash); no split is ever kept under a None hash.
Key = tuple[str, date, str | None]


@dataclass(frozen=True)
class QuarantineSplit:
    loadable: pl.DataFrame  # raw rows without raw_item, which nothing downstream reads
    rejected: pl.DataFrame

    @property
    def rows(self) -> int:
        return self.loadable.height + self.rejected.height


class QuarantineSplits:
    """Splits by (warehouse, auction date, content hash), oldest evicted past `max_rows` rows."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._entries: OrderedDict[Key, QuarantineSplit] = OrderedDict()
        self._rows = 0

    def put(self, key: Key, loadable: pl.DataFrame, rejected: pl.DataFrame) -> None:
        self.pop(key)
        split = QuarantineSplit(loadable.drop("raw_item"), rejected)
        self._entries[key] = split
        self._rows += split.rows
        while self._rows > self.max_rows:
            _, evicted = self._entries.popitem(last=False)
            self._rows -= evicted.rows

    def get(self, key: Key) -> QuarantineSplit | None:
        return self._entries.get(key)

    def pop(self, key: Key) -> QuarantineSplit | None:
        split = self._entries.pop(key, None)
        if split is not None:
            self._rows -= split.rows
        return split


# One per process: the in-process executor runs all four steps of a run here.
QUARANTINE_SPLITS = QuarantineSplits()


def keep_split(
    warehouse: Warehouse,
    day: date,
    content_hash: str,
    loadable: pl.DataFrame,
    rejected: pl.DataFrame,
) -> None:
    """Keep the raw step's split of exactly this stored content for the run's later steps."""
    QUARANTINE_SPLITS.put((warehouse.location, day, content_hash), loadable, rejected)


def split_rows(
    warehouse: Warehouse, day: date, content_hash: str | None, last_use: bool = False
) -> QuarantineSplit:
    """The auction date's stored raw rows split into loadable and rejected.

    Taken from this run's raw step when it split exactly the stored content, else read back and
    split again. `last_use` frees the kept split.
    """
    key = (warehouse.location, day, content_hash)
    kept = QUARANTINE_SPLITS.pop(key) if last_use else QUARANTINE_SPLITS.get(key)
    if kept is not None:
        return kept
    loadable, rejected = split_loadable(warehouse.read_partition(RAW, day))
    return QuarantineSplit(loadable.drop("raw_item"), rejected)
