"""The code location: assets, checks, jobs, schedule, sensors and resources, from the environment."""

from __future__ import annotations

import dagster as dg

from flower_assets import settings
from flower_assets.defs.assets import GROUP, bidding_flowers, flower_auction_assets
from flower_assets.defs.checks import flower_auction_checks
from flower_assets.defs.partitions import SEOUL_TIMEZONE, auction_date_partitions
from flower_assets.defs.resources import default_resources
from flower_assets.defs.schedules import build_daily_schedule
from flower_assets.defs.sensors import AlertResource, build_alert_sensor

LIVE = settings.env(settings.API_KEY_ENV) is not None

# The latest auction date must be in bidding_flowers by 09:00 KST, two hours after the schedule.
# Only with a service key: sample mode never has yesterday's auction date, so it would only warn.
freshness_checks = (
    dg.build_time_partition_freshness_checks(
        assets=[bidding_flowers], deadline_cron="0 9 * * *", timezone=SEOUL_TIMEZONE
    )
    if LIVE
    else []
)

flower_auction_job = dg.define_asset_job(
    "flower_auction_job",
    selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.checks(*freshness_checks),
    partitions_def=auction_date_partitions,
    description="Fetch, keep and normalize the aT flower auctions of the selected auction dates, "
    "and check each date.",
)

flower_checks_job = dg.define_asset_job(
    "flower_checks_job",
    selection=dg.AssetSelection.checks(*flower_auction_checks),
    partitions_def=auction_date_partitions,
    description="Judge the stored tables' checks again for the selected auction dates, without "
    "fetching or rewriting anything.",
)

defs = dg.Definitions(
    assets=flower_auction_assets,
    asset_checks=[*flower_auction_checks, *freshness_checks],
    jobs=[flower_auction_job, flower_checks_job],
    schedules=[build_daily_schedule(flower_auction_job, settings.correction_days())],
    sensors=[
        build_alert_sensor({a.key for a in flower_auction_assets}, {flower_auction_job.name}),
        *(
            [
                dg.build_sensor_for_freshness_checks(
                    freshness_checks=freshness_checks,
                    default_status=dg.DefaultSensorStatus.RUNNING,
                )
            ]
            if LIVE
            else []
        ),
    ],
    resources={
        **default_resources(),
        "alerts": AlertResource(
            webhook_url=dg.EnvVar(settings.ALERT_WEBHOOK_URL_ENV)
            if settings.env(settings.ALERT_WEBHOOK_URL_ENV)
            else None,
            ui_base_url=settings.env(settings.UI_BASE_URL_ENV) or settings.DEFAULT_UI_BASE_URL,
        ),
    },
    # One process per run: a step per process costs seconds for work that takes milliseconds.
    executor=dg.in_process_executor,
)
