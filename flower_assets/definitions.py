"""The code location: assets, job and resources, configured from the environment."""

from __future__ import annotations

import dagster as dg

from flower_assets.assets import GROUP, flower_auction_assets
from flower_assets.partitions import auction_date_partitions
from flower_assets.resources import default_resources

flower_auction_job = dg.define_asset_job(
    "flower_auction_job",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=auction_date_partitions,
    description="Fetch, keep and normalize the aT flower auctions of the selected auction dates.",
)

defs = dg.Definitions(
    assets=flower_auction_assets,
    jobs=[flower_auction_job],
    resources=default_resources(),
    # One process per run: a step per process costs seconds for work that takes milliseconds.
    executor=dg.in_process_executor,
)
