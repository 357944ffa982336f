"""The code location: what `flower_assets/defs/` declares, plus the jobs, schedule and sensors.

Assets, checks and resources are loaded from the defs folder (`dg.load_from_defs_folder`, as
`dg list defs` shows them); what is built from them is added here.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from flower_assets import settings
from flower_assets.defs.assets import (
    GROUP,
    MARKET_GROUP,
    flower_auction_assets,
    flower_market,
    market_report,
)
from flower_assets.defs.partitions import SEOUL_TIMEZONE, auction_date_partitions
from flower_assets.defs.schedules import build_daily_schedule
from flower_assets.defs.sensors import (
    build_alert_sensor,
    build_market_sensor,
    build_report_sensor,
)
from flower_assets.warehouse.schemas import BIDDING

# Dagster's event batching, in every process that runs this location's code (a run's planned
# events and each ranged output's materializations stored in one transaction per batch): set
# here because every run process loads this module first (settings.apply_event_batching).
settings.apply_event_batching()

LIVE = settings.env(settings.API_KEY_ENV) is not None

# The latest auction date must be in bidding_flowers by 09:00 KST, two hours after the schedule.
# Only with a service key: sample mode never has yesterday's auction date, so it would only warn.
freshness_checks = (
    dg.build_time_partition_freshness_checks(
        assets=[dg.AssetKey(BIDDING.name)], deadline_cron="0 9 * * *", timezone=SEOUL_TIMEZONE
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

flower_market_job = dg.define_asset_job(
    "flower_market_job",
    selection=dg.AssetSelection.groups(MARKET_GROUP, include_sources=True)
    - dg.AssetSelection.assets(market_report),
    partitions_def=auction_date_partitions,
    description="Observe the stored answers, then build the market tables of the selected "
    "auction dates from the auction records, and check each date. Its Partitions tab counts "
    "every date missing: market_inputs, observed here, is never materialized; Show per-asset "
    "status gives each market table's own count.",
)

flower_report_job = dg.define_asset_job(
    "flower_report_job",
    selection=dg.AssetSelection.assets(market_report),
    description="Write the market report of the last year of auction dates.",
)

# flower_checks_job, an op job that judges every check again for chosen dates, is in
# defs/checks.py and loaded with the defs folder.
defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    dg.Definitions(
        asset_checks=freshness_checks,
        jobs=[flower_auction_job, flower_market_job, flower_report_job],
        schedules=[build_daily_schedule(flower_auction_job, settings.correction_days())],
        sensors=[
            build_alert_sensor(
                {key for a in flower_auction_assets for key in a.keys} | set(flower_market.keys),
                {flower_auction_job.name, flower_market_job.name},
            ),
            build_market_sensor(flower_auction_job, flower_market_job),
            build_report_sensor(flower_market_job, flower_report_job),
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
        # One process per run: a step per process costs seconds for work that takes milliseconds.
        executor=dg.in_process_executor,
    ),
)
