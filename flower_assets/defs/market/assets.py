"""The market layer: each auction date's market tables, built from the auction records and
their history, and the market report of the last year."""

import warnings
from collections.abc import Iterator

import dagster as dg

from flower_assets import settings
from flower_assets.defs.dated import BACKFILL_POLICY, CODE_VERSION, explained, record, table_spec
from flower_assets.defs.partitions import auction_date_partitions, auction_dates
from flower_assets.defs.resources import (
    PriceIndexSettings,
    WarehouseResource,
)
from flower_assets.steps.market import (
    MarketHistory,
    MarketStep,
    latest_report_period,
    report_html,
)
from flower_assets.steps.report import (
    dates_label,
    working_on,
)
from flower_assets.warehouse.schemas import (
    BIDDING,
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    VARIETY_PRICE_CHANGES,
    Table,
)

MARKET_GROUP = "flower_market"
NO_RECORDS = "no auction records"


@dg.observable_source_asset(
    name="market_inputs",
    group_name=MARKET_GROUP,
    partitions_def=auction_date_partitions,
    description="The auction records each date's market tables rest on: for each category "
    "traded on the date, its records up to the date (market.history). Its data version per "
    "date is their digest: a first load, correction or removal of any earlier date gives the "
    "later dates a new version, and their market tables show stale until rebuilt.",
)
def market_inputs(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    price_index: PriceIndexSettings,
) -> dg.DataVersionsByPartition:
    """Observe the history digest of each of the run's dates."""
    with warehouse.open() as wh:
        current = MarketHistory.read(wh, price_index.base()).current
    versions = {
        day.isoformat(): dg.DataVersion(current.get(day, NO_RECORDS))
        for day in auction_dates(context)
    }
    # Beta in Dagster 1.13, and the only way to observe a version per date; the release is pinned.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.DataVersionsByPartition(versions)


def _market_spec(table: Table, description: str) -> dg.AssetSpec:
    return table_spec(
        table,
        MARKET_GROUP,
        description,
        [dg.AssetDep(BIDDING.name), dg.AssetDep(market_inputs)],
    )


def _market_specs() -> list[dg.AssetSpec]:
    # Built in a function: an AssetSpec at module level would be loaded from the defs folder as
    # an asset of its own, next to the multi-asset that materializes it.
    return [
        _market_spec(
            DAILY_ITEM_PRICES,
            "Per auction date and item: quantity, total and quantity-weighted average price, and "
            "its change against the item's previous auction date and its trailing 28 days.",
        ),
        _market_spec(
            VARIETY_PRICE_CHANGES,
            "Per auction date, variety and grade: today's average price against the last auction "
            "date it traded, and the trailing 28-day median.",
        ),
        _market_spec(
            CATEGORY_PRICE_INDEX,
            "Per auction date and category: a chained Törnqvist price index over the "
            "variety-and-grade pairs traded on consecutive auction dates (100 on the base date).",
        ),
    ]


@dg.multi_asset(
    name="flower_market",
    specs=_market_specs(),
    partitions_def=auction_date_partitions,
    backfill_policy=BACKFILL_POLICY,
)
def flower_market(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    price_index: PriceIndexSettings,
) -> Iterator[dg.MaterializeResult]:
    """Build each auction date's market tables from its auction records and their history."""
    days = auction_dates(context)
    with (
        working_on("flower_market", days, warehouse.location),
        warehouse.open() as wh,
        wh.market_lock(context.log.warning),
    ):
        step = MarketStep(wh, days, context.run_id, price_index.base())
        for day in days:
            for table, report in step.load(day).items():
                record(context, day, explained(wh, table, day, report), dg.AssetKey(table))
    for key in sorted(context.selected_asset_keys):
        yield dg.MaterializeResult(asset_key=key, metadata={"run_auction_dates": dates_label(days)})


@dg.asset(
    name="market_report",
    group_name=MARKET_GROUP,
    deps=[
        dg.AssetKey(CATEGORY_PRICE_INDEX.name),
        dg.AssetKey(DAILY_ITEM_PRICES.name),
        dg.AssetKey(VARIETY_PRICE_CHANGES.name),
    ],
    kinds={"html"},
    code_version=CODE_VERSION,
    description="The market report of the last year of auction dates: one self-contained "
    "HTML file (category indices, top risers and fallers, volume by weekday, the seasonal "
    "peaks). Its metadata links the latest file.",
)
def market_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Write the report of the latest year of market tables, and link it."""
    with warehouse.open() as wh:
        period = latest_report_period(wh)
        if period is None:  # expected on a new warehouse: nothing to report, and no error
            return dg.MaterializeResult(
                metadata={
                    "period": "none",
                    "report": "no report yet: no auction date is loaded in the warehouse "
                    f"{wh.location}; it is written once flower_auction_job loads a date",
                }
            )
        html = report_html(wh, *period)
    first, last = period
    directory = settings.reports_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"market_report_{first}_{last}.html"
    path.write_text(html, encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(path)),
            "report_url": dg.MetadataValue.url(path.as_uri()),
            "period": f"{first} … {last}",
            "size_kb": round(len(html.encode()) / 1024, 1),
        }
    )
