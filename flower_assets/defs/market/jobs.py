"""flower_market_job and flower_report_job: the market tables of chosen dates, and the report."""

import dagster as dg

from flower_assets.defs.market.assets import MARKET_GROUP, market_report
from flower_assets.defs.partitions import auction_date_partitions

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
