"""The auction-date partitioned assets, each persisted as a warehouse table.

The auction layer's four tables are one multi-asset, `flower_auction`, which handles a range of
auction dates in one run (backfills) and takes each date through all its selected tables in one
place (`AuctionUnit`): fetch, judge, store raw, normalize. Each date is computed, written and
committed on its own, so a failure loses at most the date it was working on; then each table
records that date's own figures as the date's materialization, also when nothing was rewritten
(`content_changed: false`), with the data version of the date's content. The checks of each
table are judged after it, per date, in `checks.py`.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date

import dagster as dg
from pydantic import Field

from flower_assets.defs.dated import (
    BACKFILL_POLICY,
    dated_materializations,
    explained,
    record,
    table_spec,
)
from flower_assets.defs.partitions import auction_date_partitions, auction_dates
from flower_assets.defs.resources import (
    AtApiResource,
    QuarantineThreshold,
    WarehouseResource,
)
from flower_assets.source.cache import CachedApi
from flower_assets.source.client import redact
from flower_assets.steps.normalizing import Masters, MasterStep, QuarantineSplit, RecordsStep
from flower_assets.steps.raw import RawStep
from flower_assets.steps.report import (
    LOAD_FAILED,
    DateReport,
    dates_label,
    working_on,
)
from flower_assets.steps.versions import content_versions
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    Table,
)

GROUP = "flower_auction"
API_POOL = "flower_api"
# Run tag that makes the normalizing assets recompute dates whose raw content did not change.
RECOMPUTE_TAG = "flower/recompute"


class RawFetchConfig(dg.Config):
    refetch: bool = Field(
        default=False,
        description="Ask the API even for dates outside the correction window that the raw "
        "response cache already holds.",
    )


def _auction_spec(table: Table, description: str, deps: tuple[Table, ...] = ()) -> dg.AssetSpec:
    return table_spec(table, GROUP, description, [dep.name for dep in deps])


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
