"""The four auction-date partitioned assets, each persisted as a warehouse table.

Every asset handles a range of auction dates in one run (backfills) and commits each date on
its own, so a failure loses at most the date it was working on.
"""

from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from flower_assets.categories import Category
from flower_assets.metadata import definition_metadata
from flower_assets.normalize import (
    auction_records,
    combine_seen,
    items_seen,
    raw_rows,
    rows_per_category,
    split_loadable,
    varieties_seen,
)
from flower_assets.partitions import auction_date_partitions, auction_dates
from flower_assets.resources import AtApiResource, WarehouseResource
from flower_assets.schemas import BIDDING, FLOWER_TYPES, FLOWERS, RAW, REJECTED, Table
from flower_assets.warehouse import Warehouse

GROUP = "flower_auction"
API_POOL = "flower_api"
# A backfill runs this many auction dates per run: few runs (little overhead), small blast radius.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)


def _asset_args(table: Table, description: str) -> dict:
    return {
        "name": table.name,
        "group_name": GROUP,
        "partitions_def": auction_date_partitions,
        "backfill_policy": BACKFILL_POLICY,
        "description": description,
        "metadata": definition_metadata(table),
        "kinds": {"polars", "sql"},
    }


def _dates_label(days: list[date]) -> str:
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}…{days[-1]} ({len(days)} dates)"


def loadable_rows(warehouse: Warehouse, day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The auction date's raw rows, split into loadable and rejected."""
    return split_loadable(warehouse.read_partition(RAW, day))


@dg.asset(
    **_asset_args(
        RAW, "Raw aT auction results, one row per API item, kept verbatim (원천 데이터)."
    ),
    pool=API_POOL,
)
def public_bidding_flowers(
    context: dg.AssetExecutionContext, at_api: AtApiResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    days = auction_dates(context)
    if at_api.sample_mode:
        context.log.warning(
            "Sample mode: FLOWER_API_KEY is not set, so the bundled sample auction days are read "
            "instead of the aT API."
        )
    per_category: Counter[str] = Counter()
    calls = pages = duplicates = rows = rejected = 0
    with at_api.client() as client, warehouse.open() as wh:
        for day in days:
            # Fetch every category before writing, so a failure leaves the old partition whole.
            frames = []
            for category in Category:
                answer = client.fetch_day(day, category)
                calls += answer.api_calls
                pages += answer.pages
                duplicates += answer.duplicates_dropped
                frames.append(raw_rows(answer.items, day, category, answer.fetched_at))
            raw = pl.concat(frames)
            wh.replace_partition(day, {RAW: raw})
            per_category.update(rows_per_category(raw))
            rows += raw.height
            rejected += split_loadable(raw)[1].height
            context.log.info(f"{day}: {raw.height} raw rows {dict(rows_per_category(raw))}")
        location = wh.location
    if duplicates:
        context.log.warning(
            f"{duplicates} rows repeated across pages were dropped (unstable paging)"
        )
    return dg.MaterializeResult(
        metadata={
            "auction_dates": _dates_label(days),
            "rows_per_category": dict(per_category),
            "api_calls": calls,
            "api_pages": pages,
            "duplicates_across_pages_dropped": duplicates,
            "rows_written": rows,
            "rows_to_quarantine": rejected,
            "dagster/row_count": rows,
            "sample_mode": at_api.sample_mode,
            "warehouse": location,
        }
    )


@dg.asset(
    **_asset_args(FLOWER_TYPES, "Item master (품목): one row per category and item name."),
    deps=[public_bidding_flowers],
)
def flower_types(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    days = auction_dates(context)
    with warehouse.open() as wh:
        before = wh.read_table(FLOWER_TYPES)
        seen = combine_seen(
            [items_seen(loadable_rows(wh, day)[0]) for day in days], ["flower_gubn", "name"]
        )
        wh.upsert_items(seen)
        after = wh.read_table(FLOWER_TYPES)
    new = after.join(before, on="id", how="anti")
    return dg.MaterializeResult(
        metadata={
            "auction_dates": _dates_label(days),
            "items_seen": seen.select("flower_gubn", "name").n_unique(),
            "new_items": new.height,
            "new_item_names": dg.MetadataValue.md(_names_md(new["name"])),
            "dagster/row_count": after.height,
        }
    )


@dg.asset(
    **_asset_args(FLOWERS, "Variety master (품종): one row per item and variety name."),
    deps=[public_bidding_flowers, flower_types],
)
def flowers(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    days = auction_dates(context)
    with warehouse.open() as wh:
        items = wh.read_table(FLOWER_TYPES)
        before = wh.read_table(FLOWERS)
        seen = combine_seen(
            [varieties_seen(loadable_rows(wh, day)[0], items) for day in days],
            ["flower_type_id", "name"],
        )
        wh.upsert_varieties(seen)
        after = wh.read_table(FLOWERS)
    new = after.join(before, on="id", how="anti")
    return dg.MaterializeResult(
        metadata={
            "auction_dates": _dates_label(days),
            "varieties_seen": seen.select("flower_type_id", "name").n_unique(),
            "new_varieties": new.height,
            "new_variety_names": dg.MetadataValue.md(_names_md(new["name"])),
            "dagster/row_count": after.height,
        }
    )


@dg.asset(
    **_asset_args(
        BIDDING, "Auction records (경매 결과): one row per auction date, variety and grade."
    ),
    deps=[public_bidding_flowers, flowers],
)
def bidding_flowers(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    days = auction_dates(context)
    loaded = rejected_total = 0
    reasons: Counter[str] = Counter()
    per_category: Counter[str] = Counter()
    with warehouse.open() as wh:
        items, varieties = wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS)
        for day in days:
            loadable, rejected = loadable_rows(wh, day)
            records = auction_records(loadable, items, varieties)
            # Records and their quarantine change together: raw = loaded + rejected at all times.
            wh.replace_partition(day, {BIDDING: records, REJECTED: rejected})
            loaded += records.height
            rejected_total += rejected.height
            reasons.update(rejected["reason"].to_list())
            per_category.update(rows_per_category(loadable))
            if rejected.height:
                context.log.warning(
                    f"{day}: {rejected.height} rows quarantined in {REJECTED.name}: {dict(Counter(rejected['reason']))}"
                )
    return dg.MaterializeResult(
        metadata={
            "auction_dates": _dates_label(days),
            "rows_per_category": dict(per_category),
            "rows_written": loaded,
            "rows_rejected": rejected_total,
            "rejected_by_reason": dict(reasons),
            "dagster/row_count": loaded,
        }
    )


def _names_md(names: pl.Series, limit: int = 30) -> str:
    shown = ", ".join(names.head(limit).to_list()) or "none"
    return shown + (f" … and {names.len() - limit} more" if names.len() > limit else "")


flower_auction_assets = [public_bidding_flowers, flower_types, flowers, bidding_flowers]
