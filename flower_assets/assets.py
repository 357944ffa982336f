"""The four auction-date partitioned assets, each persisted as a warehouse table.

Every asset handles a range of auction dates in one run (backfills) and commits each date on
its own, so a failure loses at most the date it was working on. Each step checks what it wrote
(see `checks.py`) and leaves a batch-log row per date, on success and on failure.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from flower_assets import integrity, versions
from flower_assets.categories import Category
from flower_assets.checks import (
    BIDDING_CHECKS,
    FLOWER_TYPES_CHECKS,
    FLOWERS_CHECKS,
    RAW_CHECKS,
    CheckRecorder,
    check_specs,
)
from flower_assets.client import redact
from flower_assets.metadata import definition_metadata
from flower_assets.normalize import (
    auction_records,
    item_fields,
    items_seen,
    raw_rows,
    rows_per_category,
    split_loadable,
    varieties_seen,
)
from flower_assets.partitions import auction_date_partitions, auction_dates
from flower_assets.resources import AtApiResource, IntegrityPolicy, WarehouseResource
from flower_assets.schemas import (
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    PROCESS_LOGS,
    RAW,
    REJECTED,
    UPLOAD_LOGS,
    BiddingFlowers,
    PublicBiddingFlowers,
    Table,
)
from flower_assets.source import AuctionSource
from flower_assets.split_cache import SPLITS, Split
from flower_assets.warehouse import Warehouse

GROUP = "flower_auction"
API_POOL = "flower_api"
# A backfill runs this many auction dates per run: few runs (little overhead), small blast radius.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)
# Run tag that makes the normalizing assets recompute dates whose raw content did not change.
RECOMPUTE_TAG = "flower/recompute"


class RawFetchConfig(dg.Config):
    refetch: bool = Field(
        default=False,
        description="Ask the API even for dates outside the correction window that the raw "
        "response cache already holds.",
    )


def _asset_args(table: Table, description: str, checks: tuple) -> dict:
    return {
        "name": table.name,
        "group_name": GROUP,
        "partitions_def": auction_date_partitions,
        "backfill_policy": BACKFILL_POLICY,
        "description": description,
        "metadata": definition_metadata(table),
        "kinds": {"polars", "sql"},
        "check_specs": check_specs(table.name, checks),
    }


def _dates_label(days: list[date]) -> str:
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}…{days[-1]} ({len(days)} dates)"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BatchLog:
    """One batch-log row being filled in while a date is processed."""

    table: Table
    values: dict
    started_at: datetime = field(default_factory=_now)


@contextmanager
def batch_log(
    warehouse: Warehouse,
    table: Table,
    run_id: str,
    day: date,
    secret: str | None = None,
    **defaults: object,
) -> Iterator[BatchLog]:
    """Write the date's log row when the block ends, on success and on failure alike."""
    log = BatchLog(table, {"run_id": run_id, "auction_date": day, **defaults})
    try:
        yield log
    except BaseException as exc:
        _write_log(warehouse, log, "failed", redact(f"{type(exc).__name__}: {exc}", secret))
        raise
    _write_log(warehouse, log, "success", None)


def process_log(
    warehouse: Warehouse,
    context: dg.AssetExecutionContext,
    asset: str,
    day: date,
    raw_hash: str | None,
) -> AbstractContextManager[BatchLog]:
    """The flower_batch_process_logs row of one normalizing asset and date."""
    return batch_log(
        warehouse,
        PROCESS_LOGS,
        context.run_id,
        day,
        asset=asset,
        new_items=0,
        new_varieties=0,
        auction_rows_affected=0,
        raw_content_hash=raw_hash,
    )


def _write_log(warehouse: Warehouse, log: BatchLog, status: str, error: str | None) -> None:
    row = {
        **log.values,
        "status": status,
        "error_text": error,
        "started_at": log.started_at,
        "finished_at": _now(),
    }
    columns = [c for c in log.table.columns if c != "id"]
    try:
        warehouse.append(
            log.table, pl.DataFrame([row], schema={c: log.table.polars_schema[c] for c in columns})
        )
    except Exception as exc:  # the original failure matters more than its log row
        if status == "success":
            raise
        dg.get_dagster_logger().warning(f"could not write {log.table.name} row: {exc}")


def split_rows(
    warehouse: Warehouse, day: date, content_hash: str | None, last_use: bool = False
) -> Split:
    """The auction date's stored raw rows split into loadable and rejected.

    Taken from this run's raw step when it split exactly the stored content (`split_cache`),
    else read back and split again. `last_use` frees the cached split.
    """
    key = (warehouse.location, day, content_hash)
    cached = SPLITS.pop(key) if last_use else SPLITS.get(key)
    if cached is not None:
        return cached
    loadable, rejected = split_loadable(warehouse.read_partition(RAW, day))
    return Split(loadable.drop("raw_item"), rejected)


@dataclass
class Fetched:
    raw: pl.DataFrame
    calls: dict[str, int]
    pages: dict[str, int]
    duplicates: int


def fetch_auction_date(source: AuctionSource, day: date) -> Fetched:
    """Every category of one auction date, fetched before anything is written."""
    frames, calls, pages, duplicates = [], {}, {}, 0
    for category in Category:
        answer = source.fetch_day(day, category)
        calls[category.korean_name] = answer.api_calls
        pages[category.korean_name] = answer.pages
        duplicates += answer.duplicates_dropped
        frames.append(raw_rows(answer.items, day, category, answer.fetched_at))
    return Fetched(pl.concat(frames), calls, pages, duplicates)


def _calendar(warehouse: Warehouse, days: list[date]) -> pl.DataFrame:
    """Rows per earlier auction date and category, for expected_auction_day."""
    history = warehouse.read_range(
        RAW,
        integrity.history_window_start(days[0]),
        days[0] - timedelta(days=1),
        ["auction_date", "flower_gubn"],
    )
    return history.group_by("auction_date", "flower_gubn").agg(
        pl.len().cast(pl.Int64).alias("rows")
    )


def _day_counts(day: date, raw: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "auction_date": [day] * 4,
            "flower_gubn": list(rows_per_category(raw)),
            "rows": list(rows_per_category(raw).values()),
        },
        schema={"auction_date": pl.Date, "flower_gubn": pl.String, "rows": pl.Int64},
    )


@dg.asset(
    **_asset_args(
        RAW,
        "Raw aT auction results, one row per API item, kept verbatim (원천 데이터).",
        RAW_CHECKS,
    ),
    pool=API_POOL,
)
def public_bidding_flowers(
    context: dg.AssetExecutionContext,
    config: RawFetchConfig,
    at_api: AtApiResource,
    warehouse: WarehouseResource,
    integrity_policy: IntegrityPolicy,
) -> dg.MaterializeResult:
    days = auction_dates(context)
    if at_api.sample_mode:
        context.log.warning(
            "Sample mode: FLOWER_API_KEY is not set, so the bundled sample auction days are read "
            "instead of the aT API."
        )
    checks = CheckRecorder(context, RAW.name, RAW_CHECKS)
    per_category: Counter[str] = Counter()
    rows = rejected_rows = duplicates = 0
    changed: list[date] = []
    hashes: dict[date, str] = {}
    with at_api.client() as client, warehouse.open() as wh:
        source = AuctionSource(
            client, wh, at_api.daily_quota, at_api.correction_days, config.refetch
        )
        previous = versions.latest_success(
            wh.batch_logs(days[0], days[-1])[0], ["auction_date"], "content_hash"
        )
        calendar = _calendar(wh, days)
        for day in days:
            calls_before = client.calls_made
            with batch_log(
                wh,
                UPLOAD_LOGS,
                context.run_id,
                day,
                at_api.service_key,
                items_received=0,
                items_loaded=0,
                items_rejected=0,
                api_calls=0,
                content_hash=None,
            ) as log:
                try:
                    fetched = fetch_auction_date(source, day)
                finally:
                    log.values["api_calls"] = client.calls_made - calls_before
                raw = PublicBiddingFlowers.validate(fetched.raw)
                decoded = item_fields(raw)  # once, for quarantine and the checks below
                loadable, rejected = split_loadable(decoded)
                hashes[day] = versions.content_hash(raw)
                # Unchanged content is not rewritten: the stored rows already are this answer.
                if previous.get((day,)) != hashes[day]:
                    wh.replace_partition(day, {RAW: raw})
                    changed.append(day)
                log.values.update(
                    items_received=raw.height,
                    items_loaded=loadable.height,
                    items_rejected=rejected.height,
                    content_hash=hashes[day],
                )
            # Stored and logged: the normalizing steps of this run may use this split.
            SPLITS.put((wh.location, day, hashes[day]), loadable, rejected)
            counts = rows_per_category(raw)
            state = "changed" if day in changed else "unchanged"
            context.log.info(
                f"{day}: {raw.height} raw rows {counts}, {rejected.height} to quarantine, content {state}"
            )
            checks.record(day, "schema_conforms", integrity.schema_drift(decoded))
            checks.record(
                day,
                "rejected_share_within_threshold",
                integrity.rejected_share(raw.height, rejected, integrity_policy.max_rejected_share),
            )
            checks.record(
                day,
                "one_call_per_category_succeeded",
                integrity.categories_answered(fetched.calls, fetched.pages),
            )
            checks.record(day, "no_duplicate_keys", integrity.duplicate_keys(decoded))
            checks.record(day, "dates_match_partition", integrity.dates_match(decoded))
            checks.record(
                day, "expected_auction_day", integrity.expected_auction_day(day, counts, calendar)
            )
            calendar = pl.concat([calendar, _day_counts(day, raw)])
            per_category.update(counts)
            rows += raw.height
            rejected_rows += rejected.height
            duplicates += fetched.duplicates
        location = wh.location
    if duplicates:
        context.log.warning(
            f"{duplicates} rows repeated across pages were dropped (unstable paging)"
        )
    single = len(days) == 1
    return dg.MaterializeResult(
        metadata={
            "auction_dates": _dates_label(days),
            "rows_per_category": dict(per_category),
            "api_calls": client.calls_made,
            "answers_from_cache": source.cache_hits,
            "content_changed": bool(changed) if single else f"{len(changed)} of {len(days)} dates",
            "content_hash": hashes[days[0]]
            if single
            else "one per date, see flower_batch_upload_logs",
            "duplicates_across_pages_dropped": duplicates,
            "rows_written": rows,
            "rows_to_quarantine": rejected_rows,
            "dagster/row_count": rows,
            "sample_mode": at_api.sample_mode,
            "warehouse": location,
        },
        # A date's data version is its content: Dagster shows downstream as stale only if it moved.
        data_version=dg.DataVersion(hashes[days[0]]) if single else None,
        check_results=checks.results(),
    )


def _dates_to_process(
    context: dg.AssetExecutionContext, wh: Warehouse, days: list[date], assets: tuple[str, ...]
) -> tuple[list[date], dict[date, str]]:
    """Dates whose current raw content one of the assets has not processed, and those contents."""
    uploads, processes = wh.batch_logs(days[0], days[-1])
    current = {
        key[0]: value
        for key, value in versions.latest_success(uploads, ["auction_date"], "content_hash").items()
    }
    if context.run.tags.get(RECOMPUTE_TAG) == "true":
        return days, current
    todo = set().union(*(versions.pending(days, uploads, processes, asset) for asset in assets))
    return sorted(todo), current


@dg.asset(
    **_asset_args(
        FLOWER_TYPES, "Item master (품목): one row per category and item name.", FLOWER_TYPES_CHECKS
    ),
    deps=[public_bidding_flowers],
    # No output when every date's raw content was already processed: downstream is then skipped.
    output_required=False,
)
def flower_types(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    days = auction_dates(context)
    checks = CheckRecorder(context, FLOWER_TYPES.name, FLOWER_TYPES_CHECKS)
    with warehouse.open() as wh:
        anything, current = _dates_to_process(context, wh, days, versions.NORMALIZING_ASSETS)
        todo, _ = _dates_to_process(context, wh, days, (FLOWER_TYPES.name,))
        new_items, master = _grow_master(
            context,
            wh,
            todo,
            current,
            FLOWER_TYPES,
            "new_items",
            wh.upsert_items,
            lambda day: items_seen(split_rows(wh, day, current.get(day)).loadable),
        )
    outcome = integrity.names_unique(master, "flower_gubn")
    for day in days:
        checks.record(day, "names_unique", outcome)
    if not anything:
        context.log.info(
            f"Raw content of {_dates_label(days)} is unchanged and already processed: "
            f"flower_types, flowers and bidding_flowers are not recomputed (tag {RECOMPUTE_TAG}=true forces it)."
        )
        yield from checks.results()
        return
    yield dg.MaterializeResult(
        metadata=_master_metadata(days, todo, "new_items", "new_item_names", new_items, master),
        check_results=checks.results(),
    )


@dg.asset(
    **_asset_args(
        FLOWERS, "Variety master (품종): one row per item and variety name.", FLOWERS_CHECKS
    ),
    deps=[public_bidding_flowers, flower_types],
)
def flowers(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    days = auction_dates(context)
    checks = CheckRecorder(context, FLOWERS.name, FLOWERS_CHECKS)
    with warehouse.open() as wh:
        todo, current = _dates_to_process(context, wh, days, (FLOWERS.name,))
        items = wh.read_table(FLOWER_TYPES)
        new_varieties, master = _grow_master(
            context,
            wh,
            todo,
            current,
            FLOWERS,
            "new_varieties",
            wh.upsert_varieties,
            lambda day: varieties_seen(split_rows(wh, day, current.get(day)).loadable, items),
        )
    unique = integrity.names_unique(master, "flower_type_id")
    orphans = integrity.varieties_without_item(master, items)
    for day in days:
        checks.record(day, "names_unique", unique)
        checks.record(day, "no_orphans", orphans)
    return dg.MaterializeResult(
        metadata=_master_metadata(
            days, todo, "new_varieties", "new_variety_names", new_varieties, master
        ),
        check_results=checks.results(),
    )


def _grow_master(
    context: dg.AssetExecutionContext,
    wh: Warehouse,
    todo: list[date],
    current: dict[date, str],
    table: Table,
    log_field: str,
    upsert: Callable[[pl.DataFrame], None],
    seen_on: Callable[[date], pl.DataFrame],
) -> tuple[list[str], pl.DataFrame]:
    """Add what each date saw to an only-growing master, one date per transaction.

    Returns the names that were new and the master afterwards.
    """
    key = [
        column
        for column in table.columns
        if column not in ("id", "first_seen_date", "last_seen_date")
    ]
    known = wh.read_table(table).select(key)
    new_names: list[str] = []
    for day in todo:
        with process_log(wh, context, table.name, day, current.get(day)) as log:
            seen = seen_on(day)
            new = seen.join(known, on=key, how="anti")
            upsert(seen)
            log.values[log_field] = new.height
        known = pl.concat([known, new.select(key)])
        new_names += new["name"].to_list()
    return new_names, wh.read_table(table)


def _master_metadata(
    days: list[date],
    todo: list[date],
    count_key: str,
    names_key: str,
    new_names: list[str],
    master: pl.DataFrame,
) -> dict[str, object]:
    return {
        "auction_dates": _dates_label(days),
        "dates_processed": len(todo),
        count_key: len(new_names),
        names_key: dg.MetadataValue.md(_names_md(new_names)),
        "dagster/row_count": master.height,
    }


def _labels(items: pl.DataFrame, varieties: pl.DataFrame) -> pl.DataFrame:
    """flower_id -> category, item and variety names, for check samples a person can read."""
    return varieties.join(items, left_on="flower_type_id", right_on="id").select(
        pl.col("id").alias("flower_id"),
        "flower_gubn",
        pl.col("name_right").alias("item"),
        pl.col("name").alias("variety"),
    )


@dg.asset(
    **_asset_args(
        BIDDING,
        "Auction records (경매 결과): one row per auction date, variety and grade.",
        BIDDING_CHECKS,
    ),
    deps=[public_bidding_flowers, flowers],
)
def bidding_flowers(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    days = auction_dates(context)
    checks = CheckRecorder(context, BIDDING.name, BIDDING_CHECKS)
    loaded = rejected_total = 0
    reasons: Counter[str] = Counter()
    with warehouse.open() as wh:
        items, varieties = wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS)
        labels = _labels(items, varieties)
        todo, current = _dates_to_process(context, wh, days, (BIDDING.name,))
        # Trailing price history, read once for the whole range and kept current as dates are rewritten.
        history = wh.read_range(
            BIDDING,
            integrity.history_window_start(days[0]),
            days[-1],
            ["auction_date", "flower_id", "grade", "avg_price"],
        )
        for day in todo:
            with process_log(wh, context, BIDDING.name, day, current.get(day)) as log:
                split = split_rows(wh, day, current.get(day), last_use=True)
                records = BiddingFlowers.validate(auction_records(split.loadable, items, varieties))
                rejected = split.rejected
                # Records and their quarantine change together: raw = loaded + rejected at all times.
                wh.replace_partition(day, {BIDDING: records, REJECTED: rejected})
                log.values["auction_rows_affected"] = records.height
            stored = wh.read_partition(BIDDING, day).join(labels, on="flower_id", how="left")
            stored_rejected = wh.read_partition(REJECTED, day)
            checks.record(day, "prices_ordered", integrity.prices_ordered(stored))
            checks.record(day, "totals_consistent", integrity.totals_consistent(stored))
            checks.record(day, "references_valid", integrity.references_valid(stored, varieties))
            checks.record(
                day,
                "reconciles_with_raw",
                integrity.reconciles(
                    wh.rows_per_category(RAW, day),
                    rows_per_category(stored),
                    rows_per_category(stored_rejected),
                ),
            )
            checks.record(day, "price_anomalies", integrity.price_anomalies(stored, history, day))
            # Keep only the window the next date needs: the same history whatever the run's start.
            history = pl.concat(
                [history.filter(pl.col("auction_date") != day), records.select(history.columns)]
            ).filter(
                pl.col("auction_date") >= integrity.history_window_start(day + timedelta(days=1))
            )
            loaded += records.height
            rejected_total += rejected.height
            reasons.update(rejected["reason"].to_list())
            if rejected.height:
                context.log.warning(
                    f"{day}: {rejected.height} rows quarantined in {REJECTED.name}: {dict(Counter(rejected['reason']))}"
                )
    return dg.MaterializeResult(
        metadata={
            "auction_dates": _dates_label(days),
            "dates_processed": len(todo),
            "rows_written": loaded,
            "rows_rejected": rejected_total,
            "rejected_by_reason": dict(reasons),
            "dagster/row_count": loaded,
        },
        check_results=checks.results(),
    )


def _names_md(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


flower_auction_assets = [public_bidding_flowers, flower_types, flowers, bidding_flowers]
