"""flower_auction_job: the auction tables of chosen auction dates, with their checks."""

import dagster as dg

from flower_assets.defs.auction.assets import GROUP
from flower_assets.defs.auction.checks import freshness_checks
from flower_assets.defs.partitions import auction_date_partitions

flower_auction_job = dg.define_asset_job(
    "flower_auction_job",
    selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.checks(*freshness_checks),
    partitions_def=auction_date_partitions,
    description="Fetch, keep and normalize the aT flower auctions of the selected auction dates, "
    "and check each date.",
)
