"""flower-assets: the aT Yangjae flower auctions as Dagster assets."""

import warnings

import dagster as dg

# Partitioned check specs and backfill policies are preview/beta in Dagster 1.13, and the
# time-partition freshness check is "superseded" by FreshnessPolicy, which judges when an asset
# last materialized, not whether the latest auction date is there. We use them on purpose and
# pin the release, so their notices are only noise here.
for category in (dg.PreviewWarning, dg.BetaWarning, dg.SupersessionWarning):
    warnings.filterwarnings("ignore", category=category)
# flower_market_job observes at_api_answers (an observable source: no backfill policy) before
# it builds the market tables (100 dates a run); the sensor and the CLI always launch it for a
# range, so Dagster's fallback to one date a run matters only for a job backfill (README).
warnings.filterwarnings(
    "ignore", message="Asset job flower_market_job materializes assets with varying"
)


# `dagster … -m flower_assets` finds the code location's Definitions here. Not named `defs`:
# that is the sub-package of the Dagster glue (`flower_assets.defs`), which Python binds to the
# same attribute once it is imported.
LOCATION = "location_defs"


def __getattr__(name: str) -> object:
    # Built on first use, so that importing a part of the package (the instance's event log
    # storage in dagster.yaml, say) does not build every definition.
    if name == LOCATION:
        from flower_assets.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster finds a module's Definitions through dir(): list them before they are built.
    return [*globals(), LOCATION]


__all__ = [LOCATION]
