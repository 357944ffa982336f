"""The auction-date partitioned assets, each persisted as a warehouse table.

The auction layer's four tables are one multi-asset, `flower_auction`, which handles a range of
auction dates in one run (backfills) and takes each date through all its selected tables in one
place (`AuctionUnit`): fetch, judge, store raw, normalize. Each date is computed, written and
committed on its own, so a failure loses at most the date it was working on; then each table
records that date's own figures as the date's materialization, also when nothing was rewritten
(`content_changed: false`), with the data version of the date's content. The checks of each
table are judged after it, per date, in `checks.py`. The market layer (`flower_market`) has the
same shape.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date

import dagster as dg
from pydantic import Field

from flower_assets import settings
from flower_assets.defs.checks import latest_materialization_records
from flower_assets.defs.columns import definition_metadata
from flower_assets.defs.partitions import auction_date_partitions, auction_dates
from flower_assets.defs.resources import (
    AtApiResource,
    PriceIndexSettings,
    QuarantineThreshold,
    WarehouseResource,
)
from flower_assets.source.cache import CachedApi
from flower_assets.source.client import redact
from flower_assets.steps.market import (
    MarketHistory,
    MarketStep,
    latest_report_period,
    report_html,
)
from flower_assets.steps.normalizing import Masters, MasterStep, QuarantineSplit, RecordsStep
from flower_assets.steps.raw import RawStep
from flower_assets.steps.report import (
    LOAD_FAILED,
    NO_AUCTION,
    DateReport,
    Link,
    Markdown,
    dates_label,
    no_auction,
    working_on,
)
from flower_assets.steps.versions import content_versions
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    VARIETY_PRICE_CHANGES,
    Table,
)

GROUP = "flower_auction"
API_POOL = "flower_api"
# A backfill runs this many auction dates per run: few runs (little overhead), small blast radius.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)
# Run tag that makes the normalizing assets recompute dates whose raw content did not change.
RECOMPUTE_TAG = "flower/recompute"
# Bump when an asset's transformation changes: Dagster then shows the asset as unsynced. Each
# auction date's data version is a digest of its stored content (`materialized`), the same in
# single-date and ranged runs: an unchanged re-run, of any assets, leaves nothing unsynced.
CODE_VERSION = "2"


class RawFetchConfig(dg.Config):
    refetch: bool = Field(
        default=False,
        description="Ask the API even for dates outside the correction window that the raw "
        "response cache already holds.",
    )


def _auction_spec(table: Table, description: str, deps: tuple[Table, ...] = ()) -> dg.AssetSpec:
    return dg.AssetSpec(
        table.name,
        group_name=GROUP,
        description=description,
        metadata=definition_metadata(table),
        kinds={"polars", "sql"},
        code_version=CODE_VERSION,
        deps=[dep.name for dep in deps],
    )


def _auction_specs() -> list[dg.AssetSpec]:
    # Built in a function: an AssetSpec at module level would be loaded from the defs folder as
    # an asset of its own, next to the multi-asset that materializes it.
    return [
        _auction_spec(
            RAW, "Raw aT auction results, one row per API item, kept verbatim (원천 데이터)."
        ),
        _auction_spec(
            FLOWER_TYPES, "Item master (품목): one row per category and item name.", (RAW,)
        ),
        _auction_spec(
            FLOWERS,
            "Variety master (품종): one row per item and variety name.",
            (RAW, FLOWER_TYPES),
        ),
        _auction_spec(
            BIDDING,
            "Auction records (경매 결과): one row per auction date, variety and grade.",
            (RAW, FLOWERS),
        ),
    ]


def attempt(
    context: dg.AssetExecutionContext,
    asset: str,
    day: date,
    load: Callable[[], DateReport],
    wh: Warehouse,
    secret: str | None = None,
) -> DateReport:
    """A table's work on one auction date, as its report.

    A date that fails holds back no other: its cause is logged and recorded as its metadata,
    its tables keep their previous version, and the run's other dates go on. The run then
    ends failed through the check `auction_date_loaded`, which names each such date.
    """
    try:
        return load()
    except Exception as exc:
        cause = redact(f"{type(exc).__name__}: {exc}", secret)
        context.log.error(
            f"{asset} {day}: not loaded, its previous version stays (warehouse "
            f"{wh.location}): {cause}"
        )
        return DateReport({LOAD_FAILED: cause, "content_changed": False})


def explained(wh: Warehouse, asset: str, day: date, report: DateReport) -> DateReport:
    """A date's report whose zeros say why: no auction that day, and the latest that had one."""
    if report.metadata.get("dagster/row_count") != 0 or LOAD_FAILED in report.metadata:
        return report
    if any(wh.rows_per_category(RAW, day).values()):
        return report  # an auction whose rows were all held back: the report says by what
    said: dict[str, object] = {NO_AUCTION: no_auction(day)}
    if (latest := wh.latest_auction_before(day)) is not None:
        said["latest_auction_date"] = Link(
            f"{settings.ui_base_url()}/assets/{asset}?view=partitions&partition={latest}"
        )
    return DateReport({**said, **report.metadata}, report.messages)


def record(
    context: dg.AssetExecutionContext,
    day: date,
    report: DateReport,
    asset_key: dg.AssetKey,
) -> dict[str, object]:
    """A date's report as that date's materialization metadata and log lines."""
    for level, message in report.messages:
        getattr(context.log, level)(message)
    metadata = {name: _metadata_value(value) for name, value in report.metadata.items()}
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=day.isoformat())
    return metadata


def _metadata_value(value: object) -> object:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value)
    if isinstance(value, Link):
        return dg.MetadataValue.url(value)
    return value


# Dagster's tags of a materialization's data version and provenance, as its event log stores
# them and the public `dg.DataProvenance.from_tags` reads them back (the staleness they give is
# tested through GraphQL in test_ui_materialize.py).
_DATA_VERSION_TAG = "dagster/data_version"
_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
_CODE_VERSION_TAG = "dagster/code_version"
_INPUT_VERSION_TAG = "dagster/input_data_version"
_INPUT_POINTER_TAG = "dagster/input_event_pointer"


def content_version_tags(
    code_version: str,
    version: str,
    inputs: dict[dg.AssetKey, dg.EventLogRecord | None],
) -> dict[str, str]:
    """A date's data version with its provenance: each input's version and event of that date."""
    tags = {
        _CODE_VERSION_TAG: code_version,
        _DATA_VERSION_TAG: version,
        _USER_PROVIDED_TAG: "true",
    }
    for key, record in sorted(inputs.items(), key=lambda item: item[0].to_user_string()):
        event = record.asset_materialization if record is not None else None
        name = key.to_user_string()
        version = (event.tags or {}).get(_DATA_VERSION_TAG) if event else None
        tags[f"{_INPUT_VERSION_TAG}/{name}"] = version or "INITIAL"
        tags[f"{_INPUT_POINTER_TAG}/{name}"] = str(record.storage_id) if record else "NULL"
    return tags


def dated_materializations(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    run_metadata: dict[str, object],
    recorded: dict[date, dict[str, object]],
    versions: dict[date, str],
) -> Iterator[dg.AssetMaterialization]:
    """Each date of a table once more, as its latest materialization, with the data version of
    its content (`steps.versions`), after the run's result.

    A data version on a `MaterializeResult` would apply to every date of a ranged run, and the
    one Dagster computes depends on the run's range: a single-date run of an unchanged date (the
    UI's Materialize) gave it a new version, and everything downstream showed stale. Each date's
    own materialization carries its own version, so an unchanged date keeps its version, whatever
    the run's range or asset selection; a real change still gives it a new one. Its provenance
    points at each input's latest materialization of the same date, as Dagster's would.
    """
    spec = context.assets_def.get_asset_spec(key)
    partitions = [day.isoformat() for day in recorded]
    inputs = {
        dep.asset_key: latest_materialization_records(context.instance, dep.asset_key, partitions)
        for dep in spec.deps
    }
    for day, metadata in recorded.items():
        partition = day.isoformat()
        yield dg.AssetMaterialization(
            asset_key=key,
            partition=partition,
            metadata={**run_metadata, **metadata},
            tags=content_version_tags(
                spec.code_version or CODE_VERSION,
                versions[day],
                {dep: records.get(partition) for dep, records in inputs.items()},
            ),
        )


def _recompute(context: dg.AssetExecutionContext) -> bool:
    return context.run.tags.get(RECOMPUTE_TAG) == "true"


@dataclass
class AuctionUnit:
    """The auction layer's work on one auction date, in one place: fetch, judge and store the
    raw answer, then grow the item and variety masters and replace the records from the split
    the raw step just made. Only the selected tables are computed; a table whose predecessors
    are not selected reads what they stored in the warehouse, and gives the same tables.
    """

    context: dg.AssetExecutionContext
    wh: Warehouse
    raw: RawStep | None
    normalizing: dict[Table, MasterStep | RecordsStep]
    secret: str | None

    def load(self, day: date) -> dict[Table, DateReport]:
        reports: dict[Table, DateReport] = {}
        split: QuarantineSplit | None = None
        if self.raw is not None:
            raw = self.raw

            def fetch_and_store() -> DateReport:
                nonlocal split
                report, split = raw.load(day)
                return report

            reports[RAW] = attempt(
                self.context, RAW.name, day, fetch_and_store, self.wh, self.secret
            )
        for table, step in self.normalizing.items():
            reports[table] = attempt(
                self.context, table.name, day, lambda step=step: step.load(day, split), self.wh
            )
        return reports


@dg.multi_asset(
    name="flower_auction",
    specs=_auction_specs(),
    partitions_def=auction_date_partitions,
    backfill_policy=BACKFILL_POLICY,
    can_subset=True,
    pool=API_POOL,
    description="The auction layer, one auction date at a time: fetch the date's answer, judge "
    "it, store it verbatim, and normalize it into the item and variety masters and the auction "
    "records. Any subset can be materialized: a table whose predecessors are not selected reads "
    "what they stored.",
)
def flower_auction(
    context: dg.AssetExecutionContext,
    config: RawFetchConfig,
    at_api: AtApiResource,
    warehouse: WarehouseResource,
    quarantine_threshold: QuarantineThreshold,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    """Load each auction date of the run through the selected tables, then record each date."""
    days = auction_dates(context)
    selected = [
        table
        for table in (RAW, FLOWER_TYPES, FLOWERS, BIDDING)
        if dg.AssetKey(table.name) in context.selected_asset_keys
    ]
    recompute = _recompute(context)
    recorded: dict[Table, dict[date, dict[str, object]]] = {table: {} for table in selected}
    with working_on("flower_auction", days, warehouse.location), ExitStack() as stack:
        wh = stack.enter_context(warehouse.open())
        raw_step = None
        if RAW in selected:
            if at_api.sample_mode:
                context.log.warning(
                    "Sample mode: FLOWER_API_KEY is not set, so the sample auction days of the "
                    "synthetic market are read instead of the aT API."
                )
            client = stack.enter_context(at_api.client())
            wh.claim_source(at_api.source)  # before anything is fetched or written
            api = CachedApi(client, wh, at_api.daily_quota, at_api.correction_days, config.refetch)
            raw_step = RawStep(
                wh,
                api,
                days,
                context.run_id,
                quarantine_threshold.max_rejected_share,
                at_api.sample_mode,
                at_api.key,
            )
        masters = Masters(wh)
        steps: dict[Table, MasterStep | RecordsStep] = {
            table: MasterStep(wh, table, context.run_id, recompute, masters)
            for table in (FLOWER_TYPES, FLOWERS)
            if table in selected
        }
        if BIDDING in selected:
            steps[BIDDING] = RecordsStep(wh, context.run_id, recompute, masters)
        unit = AuctionUnit(context, wh, raw_step, steps, at_api.key)
        for day in days:
            for table, report in unit.load(day).items():
                key = dg.AssetKey(table.name)
                recorded[table][day] = record(
                    context, day, explained(wh, table.name, day, report), key
                )
        versions = {table: content_versions(wh, days, table.name) for table in selected}
        run_metadata = {
            RAW: {"warehouse": wh.location},
            FLOWER_TYPES: {"items_in_master": wh.row_count(FLOWER_TYPES)},
            FLOWERS: {"varieties_in_master": wh.row_count(FLOWERS)},
            BIDDING: {},
        }
    results = {
        table: {"run_auction_dates": dates_label(days), **run_metadata[table]} for table in selected
    }
    # Dagster's results first: it reads each table's latest materialization as the provenance of
    # the next table's result, which must be its own of this step. Then each date's own, in the
    # order of the tables' dependencies: a date's provenance points at its inputs'
    # materializations of the same date, recorded just before.
    for table, metadata in results.items():
        yield dg.MaterializeResult(asset_key=table.name, metadata=metadata)
    for table, metadata in results.items():
        key = dg.AssetKey(table.name)
        yield from dated_materializations(context, key, metadata, recorded[table], versions[table])


flower_auction_assets = [flower_auction]


# --- the market layer ---------------------------------------------------------------------------

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
    return dg.DataVersionsByPartition(
        {
            day.isoformat(): dg.DataVersion(current.get(day, NO_RECORDS))
            for day in auction_dates(context)
        }
    )


def _market_spec(table: Table, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        table.name,
        group_name=MARKET_GROUP,
        description=description,
        metadata=definition_metadata(table),
        kinds={"polars", "sql"},
        code_version=CODE_VERSION,
        deps=[dg.AssetDep(BIDDING.name), dg.AssetDep(market_inputs)],
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
