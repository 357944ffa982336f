"""The daily schedule: the latest auction date plus a correction window before it."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from flower_assets import settings
from flower_assets.errors import SEOUL
from flower_assets.partitions import SEOUL_TIMEZONE

# 07:00 in Seoul: the previous day's auctions have settled and been published by then.
DAILY_CRON = "0 7 * * *"


def dates_for_tick(tick: datetime, correction_days: int, first: date) -> list[date]:
    """Yesterday (Seoul) and the `correction_days` dates before it, oldest first."""
    latest = tick.astimezone(SEOUL).date() - timedelta(days=1)
    return [d for n in range(correction_days, -1, -1) if (d := latest - timedelta(days=n)) >= first]


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
        if settings.env(settings.API_KEY_ENV)
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Every day at 07:00 KST: the latest auction date and the {correction_days} before it "
        "(late settlement corrections); unchanged dates are not recomputed downstream.",
    )
    def daily_auction_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        latest = dates_for_tick(tick, 0, settings.start_date())
        for day in dates_for_tick(tick, correction_days, settings.start_date()):
            yield dg.RunRequest(
                run_key=f"{day.isoformat()}@{tick.astimezone(SEOUL).date().isoformat()}",
                partition_key=day.isoformat(),
                tags={
                    "flower/trigger": "daily",
                    "flower/correction": str(day not in latest).lower(),
                },
            )

    return daily_auction_schedule
