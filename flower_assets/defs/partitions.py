"""Auction-date partitions: one per calendar day in Asia/Seoul, keyed YYYY-MM-DD.

With a service key they run from FLOWER_START_DATE to yesterday, growing daily. In sample mode
they are exactly the sample period, so the UI shows what the sample instance holds (100% once
loaded) and its dialogs and plots open on the sample dates, not on empty recent ones.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from flower_assets import settings
from flower_assets.sample.days import SAMPLE_PERIOD
from flower_assets.steps.report import dates_between

SEOUL_TIMEZONE = "Asia/Seoul"


def partition_bounds() -> tuple[date, date | None]:
    """The first auction-date partition and the last one (None: yesterday in Seoul)."""
    if not settings.is_live():
        return SAMPLE_PERIOD
    return settings.start_date(), None


def partitions_label() -> str:
    """Where the auction-date partitions run, in words, for messages that refuse a date."""
    first, last = partition_bounds()
    if last is not None:
        return (
            f"the sample period {first} to {last} (set {settings.api_key.variable} for live dates)"
        )
    yesterday = auction_date_partitions.get_last_partition_key() or "yesterday"
    return (
        f"{first} ({settings.start_date.variable}) to {yesterday} (yesterday in {SEOUL_TIMEZONE})"
    )


def _partitions() -> dg.DailyPartitionsDefinition:
    first, last = partition_bounds()
    return dg.DailyPartitionsDefinition(
        start_date=first.isoformat(),
        # Dagster's end date is exclusive.
        end_date=None if last is None else (last + timedelta(days=1)).isoformat(),
        timezone=SEOUL_TIMEZONE,
        fmt="%Y-%m-%d",
    )


auction_date_partitions = _partitions()


def auction_dates(context: dg.AssetExecutionContext) -> list[date]:
    """The auction dates one run covers: one for a daily run, many for a ranged backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def date_chunks(start: date, end: date, size: int) -> list[tuple[date, date]]:
    """start..end cut into consecutive ranges of at most `size` dates, as a backfill cuts it."""
    chunks, first = [], start
    while first <= end:
        last = min(first + timedelta(days=size - 1), end)
        chunks.append((first, last))
        first = last + timedelta(days=1)
    return chunks


def run_dates(tags: dict[str, str]) -> list[date]:
    """The auction dates of a run, from its partition or partition-range tags."""
    if "dagster/partition" in tags:
        return [date.fromisoformat(tags["dagster/partition"])]
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    if not (first and last):
        return []
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return dates_between(start, end)
