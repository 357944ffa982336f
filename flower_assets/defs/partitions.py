"""Auction-date partitions: one per calendar day in Asia/Seoul, keyed YYYY-MM-DD."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from flower_assets import settings
from flower_assets.steps.report import dates_between

SEOUL_TIMEZONE = "Asia/Seoul"

auction_date_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.start_date().isoformat(), timezone=SEOUL_TIMEZONE, fmt="%Y-%m-%d"
)


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
