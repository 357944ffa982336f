"""Auction-date partitions: one per calendar day in Asia/Seoul, keyed YYYY-MM-DD."""

from __future__ import annotations

from datetime import date

import dagster as dg

from flower_assets import settings

SEOUL_TIMEZONE = "Asia/Seoul"

auction_date_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.start_date().isoformat(), timezone=SEOUL_TIMEZONE, fmt="%Y-%m-%d"
)


def auction_dates(context: dg.AssetExecutionContext) -> list[date]:
    """The auction dates one run covers: one for a daily run, many for a ranged backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]
