"""The four auction-date partitioned assets, each persisted as a warehouse table.

Every asset handles a range of auction dates in one run (backfills) and commits each date on
its own, so a failure loses at most the date it was working on. Whatever the range, each date's
materialization carries that date's own figures, and every date of the run is recorded, also
when its content did not change and nothing was rewritten (`content_changed: false`). The
checks of each asset are judged after it, per date, in `checks.py`.

Blocking is per date: the raw step judges each date's blocking checks; a date that fails keeps
its raw rows (stored verbatim) but is logged `blocked`, and the normalizing steps leave its
previous version in place while the run's other dates load.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from flower_assets.defs.checks import RAW_CHECKS, blocked_by, remember_raw_outcomes
from flower_assets.defs.columns import definition_metadata
from flower_assets.defs.partitions import auction_date_partitions, auction_dates
from flower_assets.defs.quarantine_splits import QUARANTINE_SPLITS, QuarantineSplit
from flower_assets.defs.resources import AtApiResource, IntegrityPolicy, WarehouseResource
from flower_assets.quality import integrity
from flower_assets.source.cache import CachedApi
from flower_assets.source.categories import Category
from flower_assets.source.client import redact
from flower_assets.transform import revisions, unchanged
from flower_assets.transform.normalize import (
    auction_records,
    item_fields,
    items_seen,
    raw_rows,
    rows_per_category,
    split_loadable,
    varieties_seen,
)
from flower_assets.transform.unchanged import Stored
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    CORRECTIONS,
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

GROUP = "flower_auction"
API_POOL = "flower_api"
# A backfill runs this many auction dates per run: few runs (little overhead), small blast radius.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)
# Run tag that makes the normalizing assets recompute dates whose raw content did not change.
RECOMPUTE_TAG = "flower/recompute"
# Bump when an asset's transformation changes: Dagster then shows the tables downstream of it
# as unsynced. Data versions follow from code versions alone, the same in single-date and
# ranged runs; an unchanged re-fetch leaves nothing unsynced.
CODE_VERSION = "2"


class RawFetchConfig(dg.Config):
    refetch: bool = Field(
        default=False,
        description="Ask the API even for dates outside the correction window that the raw "
        "response cache already holds.",
    )


def _asset_args(table: Table, description: str) -> dict:
    return {
        "name": table.name,
        "group_name": GROUP,
        "partitions_def": auction_date_partitions,
        "backfill_policy": BACKFILL_POLICY,
        "description": description,
        "metadata": definition_metadata(table),
        "kinds": {"polars", "sql"},
        "code_version": CODE_VERSION,
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
    # How the date ended when the block ends normally, and why (for `blocked`).
    status: str = unchanged.LOADABLE
    note: str | None = None


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
    _write_log(warehouse, log, log.status, redact(log.note, secret) if log.note else None)


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
        if status != "failed":
            raise
        dg.get_dagster_logger().warning(f"could not write {log.table.name} row: {exc}")


def split_rows(
    warehouse: Warehouse, day: date, content_hash: str | None, last_use: bool = False
) -> QuarantineSplit:
    """The auction date's stored raw rows split into loadable and rejected.

    Taken from this run's raw step when it split exactly the stored content (`split_cache`),
    else read back and split again. `last_use` frees the cached split.
    """
    key = (warehouse.location, day, content_hash)
    cached = QUARANTINE_SPLITS.pop(key) if last_use else QUARANTINE_SPLITS.get(key)
    if cached is not None:
        return cached
    loadable, rejected = split_loadable(warehouse.read_partition(RAW, day))
    return QuarantineSplit(loadable.drop("raw_item"), rejected)


@dataclass
class Fetched:
    raw: pl.DataFrame
    calls: dict[str, int]
    pages: dict[str, int]
    repeated: dict[str, int]


def fetch_auction_date(source: CachedApi, day: date) -> Fetched:
    """Every category of one auction date, fetched before anything is written."""
    frames, calls, pages, repeated = [], {}, {}, {}
    for category in Category:
        answer = source.fetch_day(day, category)
        calls[category.korean_name] = answer.api_calls
        pages[category.korean_name] = answer.pages
        repeated[category.korean_name] = answer.duplicates_dropped
        frames.append(raw_rows(answer.items, day, category, answer.fetched_at))
    return Fetched(pl.concat(frames), calls, pages, repeated)


def store_answer(
    wh: Warehouse, day: date, raw: pl.DataFrame, content: str, stored: Stored | None, run_id: str
) -> pl.DataFrame:
    """Store the date's answer, unless it is the one stored; a correction keeps what changed.

    Returns the changes recorded in the corrections table (none for a first or an unchanged
    answer); they commit together with the new raw rows.
    """
    if stored is not None and stored.content_hash == content:
        return revisions.NO_CHANGES  # the stored rows already are this answer
    if stored is None:
        wh.replace_partition(day, {RAW: raw})
        return revisions.NO_CHANGES
    old = wh.read_partition(RAW, day)
    changes = revisions.diff_answers(old, raw)
    corrections = revisions.as_recorded(
        changes, day, unchanged.content_hash(old), content, run_id, _now()
    )
    wh.replace_partition(day, {RAW: raw}, appended={CORRECTIONS: corrections})
    return changes


def _day_counts(day: date, raw: pl.DataFrame) -> pl.DataFrame:
    counts = rows_per_category(raw)
    return pl.DataFrame(
        {
            "auction_date": [day] * len(counts),
            "flower_gubn": list(counts),
            "rows": list(counts.values()),
        },
        schema={"auction_date": pl.Date, "flower_gubn": pl.String, "rows": pl.Int64},
    )


@dg.asset(
    **_asset_args(
        RAW, "Raw aT auction results, one row per API item, kept verbatim (원천 데이터)."
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
    with at_api.client() as client, warehouse.open() as wh:
        wh.claim_source(at_api.source)  # before anything is fetched or written
        source = CachedApi(client, wh, at_api.daily_quota, at_api.correction_days, config.refetch)
        stored = unchanged.stored_raw(wh.batch_logs(days[0], days[-1])[0])
        # Rows per earlier date and category, for expected_auction_day; grows as dates are stored.
        calendar = wh.rows_per_date_and_category(
            RAW, integrity.history_window_start(days[0]), days[0] - timedelta(days=1)
        )
        for day in days:
            calls_before, cached_before = client.calls_made, source.cache_hits
            with batch_log(
                wh,
                UPLOAD_LOGS,
                context.run_id,
                day,
                at_api.key,
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
                decoded = item_fields(raw)  # once, for quarantine and the checks
                loadable, rejected = split_loadable(decoded)
                content = unchanged.content_hash(raw)
                outcomes = integrity.judge_raw(
                    day,
                    decoded,
                    rejected,
                    calendar,
                    integrity_policy.max_rejected_share,
                    fetched.pages,
                    fetched.repeated,
                )
                blocked = blocked_by(RAW_CHECKS, outcomes)
                changed = day not in stored or stored[day].content_hash != content
                changes = store_answer(wh, day, raw, content, stored.get(day), context.run_id)
                log.values.update(
                    items_received=raw.height,
                    items_loaded=loadable.height,
                    items_rejected=rejected.height,
                    content_hash=content,
                )
                if blocked:
                    log.status, log.note = unchanged.BLOCKED, blocked
            # Stored and logged: this run's normalizing steps and checks may use what was judged.
            if not blocked:
                QUARANTINE_SPLITS.put((wh.location, day, content), loadable, rejected)
            remember_raw_outcomes(context.run_id, wh.location, day, outcomes)
            calendar = pl.concat([calendar, _day_counts(day, raw)])
            counts = rows_per_category(raw)
            context.log.info(
                f"{day}: {raw.height} raw rows {counts}, {rejected.height} to quarantine, "
                f"content {'changed' if changed else 'unchanged'}"
            )
            if changes.height:
                context.log.warning(
                    f"{day}: the source corrected its answer, {revisions.counts(changes)} rows; "
                    f"old and new values are in {CORRECTIONS.name}"
                )
            if blocked:
                context.log.error(
                    f"{day}: not loaded into the normalized tables, which keep their previous "
                    f"version of the date: {blocked}"
                )
            context.add_asset_metadata(
                {
                    "dagster/row_count": raw.height,
                    "rows_per_category": counts,
                    "api_calls": client.calls_made - calls_before,
                    "answers_from_cache": source.cache_hits - cached_before,
                    "content_hash": content,
                    "content_changed": changed,
                    "rows_to_quarantine": rejected.height,
                    "corrected_rows": changes.height,
                    "corrections": revisions.counts(changes),
                    "rows_repeated_across_pages": sum(fetched.repeated.values()),
                    "blocked_by": blocked or "none",
                    "sample_mode": at_api.sample_mode,
                },
                partition_key=day.isoformat(),
            )
        location = wh.location
    return dg.MaterializeResult(
        metadata={"run_auction_dates": _dates_label(days), "warehouse": location}
    )


@dataclass
class DatesToLoad:
    """What a normalizing step does with each auction date of its run."""

    stored: dict[date, Stored]  # the raw content stored per date
    processed: dict[date, str]  # the raw content this step last loaded per date
    todo: list[date]  # dates to (re)compute now

    def status(self, day: date) -> dict[str, object]:
        """Per-date metadata: whether this run rewrote the date, and what the table holds."""
        loaded_now = day in self.todo
        holds = self.stored[day].content_hash if loaded_now else self.processed.get(day)
        blocked = self.stored[day].blocked_by if day in self.stored else None
        return {
            "content_changed": loaded_now,
            "raw_content_hash": holds or "none: nothing loaded for this date",
            "blocked_by": f"{RAW.name}: {blocked}" if blocked else "none",
        }


def _dates_to_load(
    context: dg.AssetExecutionContext, wh: Warehouse, days: list[date], asset: str
) -> DatesToLoad:
    uploads, processes = wh.batch_logs(days[0], days[-1])
    stored = unchanged.stored_raw(uploads)
    processed = unchanged.processed(processes, asset)
    # With the recompute tag, every loadable date counts as not processed yet.
    recompute = context.run.tags.get(RECOMPUTE_TAG) == "true"
    todo = unchanged.pending(days, stored, {} if recompute else processed)
    for day in days:
        if day in stored and stored[day].blocked_by and day not in todo:
            context.log.warning(f"{asset} {day}: blocked, keeps its previous version")
    return DatesToLoad(stored, processed, todo)


def _grow_master(
    context: dg.AssetExecutionContext,
    wh: Warehouse,
    days: list[date],
    table: Table,
    id_column: str,
    upsert: Callable[[pl.DataFrame], None],
    seen_on: Callable[[date, str], pl.DataFrame],
) -> None:
    """Add what each date saw to an only-growing master, one date per transaction.

    Records each date's materialization metadata; `dagster/row_count` of a master's date is
    the number of its rows that the date's auction records reference.
    """
    plan = _dates_to_load(context, wh, days, table.name)
    counted, named = (
        ("new_items", "new_item_names")
        if table is FLOWER_TYPES
        else ("new_varieties", "new_variety_names")
    )
    key = [c for c in table.columns if c not in ("id", "first_seen_date", "last_seen_date")]
    known = wh.read_table(table).select(key)
    # Dates not recomputed now: count what their stored auction records reference.
    kept = [day for day in days if day not in plan.todo]
    traded = wh.traded_varieties(kept[0], kept[-1]) if kept else None
    for day in days:
        new_names: list[str] = []
        if day in plan.todo:
            content = plan.stored[day].content_hash
            with process_log(wh, context, table.name, day, content) as log:
                seen = seen_on(day, content)
                new = seen.join(known, on=key, how="anti")
                upsert(seen)
                log.values[counted] = new.height
            known = pl.concat([known, new.select(key)])
            new_names = new["name"].to_list()
            rows = seen.height
        else:
            assert traded is not None  # day is one of `kept`
            rows = traded.filter(pl.col("auction_date") == day)[id_column].n_unique()
        context.add_asset_metadata(
            {
                "dagster/row_count": rows,
                counted: len(new_names),
                named: dg.MetadataValue.md(_names_md(new_names)),
                **plan.status(day),
            },
            partition_key=day.isoformat(),
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
        _grow_master(
            context,
            wh,
            days,
            FLOWER_TYPES,
            "flower_type_id",
            wh.upsert_items,
            lambda day, content: items_seen(split_rows(wh, day, content).loadable),
        )
        size = wh.read_table(FLOWER_TYPES).height
    return dg.MaterializeResult(
        metadata={"run_auction_dates": _dates_label(days), "items_in_master": size}
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
        _grow_master(
            context,
            wh,
            days,
            FLOWERS,
            "flower_id",
            wh.upsert_varieties,
            lambda day, content: varieties_seen(split_rows(wh, day, content).loadable, items),
        )
        size = wh.read_table(FLOWERS).height
    return dg.MaterializeResult(
        metadata={"run_auction_dates": _dates_label(days), "varieties_in_master": size}
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
    with warehouse.open() as wh:
        items, varieties = wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS)
        plan = _dates_to_load(context, wh, days, BIDDING.name)
        for day in days:
            if day in plan.todo:
                content = plan.stored[day].content_hash
                with process_log(wh, context, BIDDING.name, day, content) as log:
                    split = split_rows(wh, day, content, last_use=True)
                    records = BiddingFlowers.validate(
                        auction_records(split.loadable, items, varieties)
                    )
                    rejected = split.rejected
                    # Records and their quarantine change together: raw = loaded + rejected.
                    wh.replace_records(day, records, rejected)
                    log.values["auction_rows_affected"] = records.height
                rows = records.height
            else:
                rows = wh.read_partition(BIDDING, day).height
                rejected = wh.read_partition(REJECTED, day)
            reasons = dict(Counter(rejected["reason"].to_list()))
            if day in plan.todo and rejected.height:
                context.log.warning(
                    f"{day}: {rejected.height} rows quarantined in {REJECTED.name}: {reasons}"
                )
            context.add_asset_metadata(
                {
                    "dagster/row_count": rows,
                    "rows_quarantined": rejected.height,
                    "rejected_by_reason": reasons,
                    **plan.status(day),
                },
                partition_key=day.isoformat(),
            )
    return dg.MaterializeResult(metadata={"run_auction_dates": _dates_label(days)})


def _names_md(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


flower_auction_assets = [public_bidding_flowers, flower_types, flowers, bidding_flowers]
