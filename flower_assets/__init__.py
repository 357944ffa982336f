"""flower-assets: the aT Yangjae flower auctions as Dagster assets."""

import warnings

import dagster as dg

# Partitioned check specs and backfill policies are preview/beta in Dagster 1.13, and the
# time-partition freshness check is "superseded" by FreshnessPolicy, which judges when an asset
# last materialized, not whether the latest auction date is there. We use them on purpose and
# pin the release, so their notices are only noise here.
for category in (dg.PreviewWarning, dg.BetaWarning, dg.SupersessionWarning):
    warnings.filterwarnings("ignore", category=category)

from flower_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
