"""The in-memory split of a date's raw rows: keyed by content, bounded in rows."""

from __future__ import annotations

from datetime import date

import polars as pl

from flower_assets.steps.quarantine_splits import QuarantineSplits

DAY = date(2024, 5, 10)


def rows(n: int) -> pl.DataFrame:
    return pl.DataFrame({"grade": ["특1"] * n, "raw_item": ["{}"] * n})


def test_a_split_is_found_only_under_the_content_it_was_made_from() -> None:
    cache = QuarantineSplits()
    cache.put(("wh", DAY, "hash-a"), rows(3), rows(1))
    assert cache.get(("wh", DAY, "hash-b")) is None
    assert cache.get(("other-wh", DAY, "hash-a")) is None
    split = cache.get(("wh", DAY, "hash-a"))
    assert split is not None and split.loadable.columns == ["grade"]  # raw_item is not kept
    assert cache.pop(("wh", DAY, "hash-a")) is split and cache.get(("wh", DAY, "hash-a")) is None


def test_oldest_splits_are_evicted_past_the_row_bound() -> None:
    cache = QuarantineSplits(max_rows=10)
    for number in range(3):
        cache.put(("wh", date(2024, 5, 10 + number), "h"), rows(4), rows(0))
    assert cache.get(("wh", date(2024, 5, 10), "h")) is None
    assert cache.get(("wh", date(2024, 5, 11), "h")) is not None
    assert cache.get(("wh", date(2024, 5, 12), "h")) is not None
    # A date put again replaces its entry instead of counting twice.
    cache.put(("wh", date(2024, 5, 12), "h"), rows(4), rows(0))
    assert cache.get(("wh", date(2024, 5, 11), "h")) is not None
