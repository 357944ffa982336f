"""flower-assets: the aT Yangjae flower auctions as Dagster assets."""

import warnings

import dagster as dg

# Partitioned check specs, backfill policies and freshness checks are preview/beta in Dagster
# 1.13; we use them on purpose and pin the release, so their notices are only noise here.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from flower_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
