"""The daily schedule: the latest auction date plus a correction window before it."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

from flower_assets import settings
from flower_assets.defs.auction.jobs import flower_auction_job
from flower_assets.defs.partitions import SEOUL_TIMEZONE
from flower_assets.source.clock import kst_today
from flower_assets.source.correction_window import correction_window, latest_auction_date

# 07:00 in Seoul: the previous day's auctions have settled and been published by then.
DAILY_CRON = "0 7 * * *"


def dates_for_tick(tick: datetime, correction_days: int, first: date) -> list[date]:
    """The tick's correction window (see `corrections`), from the first partition on."""
    return [day for day in correction_window(kst_today(tick), correction_days) if day >= first]


def build_daily_schedule(
    job: dg.UnresolvedAssetJobDefinition, correction_days: int
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_auction_schedule",
        job=job,
        cron_schedule=DAILY_CRON,
        execution_timezone=SEOUL_TIMEZONE,
        # Sample mode has nothing new to fetch each day; with a key the platform runs itself.
        default_status=dg.DefaultScheduleStatus.RUNNING
        if settings.is_live()
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Every day at 07:00 KST: the latest auction date and the {correction_days} before it, "
        "all re-fetched from the API (the source rebuilds the last 3 days on every send); unchanged "
        "dates are recorded without rewriting.",
    )
    def daily_auction_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        today = kst_today(tick)
        latest = latest_auction_date(today)
        for day in dates_for_tick(tick, correction_days, settings.start_date()):
            yield dg.RunRequest(
                run_key=f"{day.isoformat()}@{today.isoformat()}",
                partition_key=day.isoformat(),
                tags={
                    "flower/trigger": "daily",
                    "flower/correction": str(day != latest).lower(),
                },
            )

    return daily_auction_schedule


daily_schedule = build_daily_schedule(flower_auction_job, settings.correction_days())
