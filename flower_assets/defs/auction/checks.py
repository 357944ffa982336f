"""The auction tables' checks: raw answers, item and variety masters, auction records."""

import warnings
from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl

from flower_assets import settings
from flower_assets.defs.judging import (
    AssetChecks,
    CheckSettings,
    Judge,
    JudgeContext,
    build_asset_checks,
    by_date,
    failed_loads,
)
from flower_assets.defs.partitions import SEOUL_TIMEZONE
from flower_assets.quality import catalog, integrity
from flower_assets.quality.catalog import (
    AUCTION_DATE_LOADED,
    FLOWER_TYPES_CHECKS,
    FLOWERS_CHECKS,
    PRICE_ANOMALIES,
    PRICES_ORDERED,
    RAW_CHECKS,
    RECONCILES_WITH_RAW,
    TOTALS_CONSISTENT,
    Check,
    MasterChecks,
)
from flower_assets.quality.integrity import Outcome
from flower_assets.transform import unchanged
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.raw import item_fields
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    REJECTED,
    Table,
)


def judge_raw(
    context: JudgeContext,
    wh: Warehouse,
    days: list[date],
    settings: CheckSettings,
) -> Iterator[tuple[date, dict[Check, Outcome]]]:
    """The raw rules of each date. A date this run fetched was judged by the raw step when it
    stored the answer (its upload log keeps the outcomes): reported as judged, not decoded
    again. Any other run (flower_checks_job, a checks-only launch) judges the stored rows."""
    judged = judged_by_run(wh.upload_logs(days[0], days[-1], judged=True), context.run.run_id)
    calendar = wh.rows_per_date_and_category(RAW, integrity.history_window_start(days[0]), days[-1])
    for day in days:
        if day in judged:
            yield day, judged[day]
            continue
        decoded = item_fields(wh.read_partition(RAW, day))
        _, rejected = split_loadable(decoded)
        earlier = calendar.filter(pl.col("auction_date") < day)
        yield (
            day,
            catalog.judge_raw(day, decoded, rejected, earlier, settings.max_rejected_share),
        )


def judged_by_run(uploads: pl.DataFrame, run_id: str) -> dict[date, dict[Check, Outcome]]:
    """The raw rules' outcomes on each date's stored answer, where `run_id` fetched and judged
    it: its upload is the date's latest that stored an answer."""
    stored = unchanged.latest_stored_uploads(uploads)
    return {
        day: catalog.outcomes_from_json(text, RAW_CHECKS)
        for day, run, text in stored.select("auction_date", "run_id", "raw_checks").rows()
        if run == run_id and text is not None
    }


def _judge_master(checks: MasterChecks, id_column: str, table: Table, scope: str) -> Judge:
    def judge(
        context: JudgeContext,
        wh: Warehouse,
        days: list[date],
        settings: CheckSettings,
    ) -> Iterator[tuple[date, dict[Check, Outcome]]]:
        master = wh.read_table(table)
        twins = integrity.lookalike_twins(master, scope)  # a property of the whole master
        traded = by_date(wh.traded_varieties(days[0], days[-1]))
        empty = pl.Series(id_column, [], dtype=pl.Int64)
        for day in days:
            referenced = traded[day][id_column].unique() if day in traded else empty
            yield (
                day,
                {
                    checks.lookalike_names: checks.lookalike_names.judge(twins, scope, referenced),
                    checks.seen_dates: checks.seen_dates.judge(master, referenced, day),
                },
            )

    return judge


def labels(items: pl.DataFrame, varieties: pl.DataFrame) -> pl.DataFrame:
    """flower_id -> category, item and variety names, for check samples a person can read."""
    return varieties.join(items, left_on="flower_type_id", right_on="id").select(
        pl.col("id").alias("flower_id"),
        "flower_gubn",
        pl.col("name_right").alias("item"),
        pl.col("name").alias("variety"),
    )


def judge_bidding(
    context: JudgeContext,
    wh: Warehouse,
    days: list[date],
    settings: CheckSettings,
) -> Iterator[tuple[date, dict[Check, Outcome]]]:
    named = labels(wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS))
    # Price history for the anomaly rule reaches back before the first date.
    records = wh.read_range(
        BIDDING, integrity.history_window_start(days[0]), days[-1], BIDDING.columns
    ).join(named, on="flower_id", how="left")
    history = records.select("auction_date", "flower_id", "grade", "avg_price")
    stored = by_date(records)
    raw = by_date(wh.rows_per_date_and_category(RAW, days[0], days[-1]))
    rejected = by_date(wh.rows_per_date_and_category(REJECTED, days[0], days[-1]))
    not_loaded = {
        **failed_loads(context.instance, days),
        **unchanged.not_loaded(days, *wh.batch_logs(days[0], days[-1])),
    }

    def per_category(counts: dict[date, pl.DataFrame], day: date) -> dict[str, int]:
        return dict(counts[day].select("flower_gubn", "rows").rows()) if day in counts else {}

    for day in days:
        today = stored.get(day, records.clear())
        window = history.filter(
            pl.col("auction_date").is_between(integrity.history_window_start(day), day, "left")
        )
        yield (
            day,
            {
                AUCTION_DATE_LOADED: AUCTION_DATE_LOADED.judge(
                    day, not_loaded.get(day), today.height
                ),
                PRICES_ORDERED: PRICES_ORDERED.judge(today),
                TOTALS_CONSISTENT: TOTALS_CONSISTENT.judge(today),
                RECONCILES_WITH_RAW: RECONCILES_WITH_RAW.judge(
                    per_category(raw, day),
                    dict(today.group_by("flower_gubn").len().rows()),
                    per_category(rejected, day),
                ),
                PRICE_ANOMALIES: PRICE_ANOMALIES.judge(today, window, day),
            },
        )


RAW_JUDGED = AssetChecks(RAW.name, judge_raw)
FLOWER_TYPES_JUDGED = AssetChecks(
    FLOWER_TYPES.name,
    _judge_master(FLOWER_TYPES_CHECKS, "flower_type_id", FLOWER_TYPES, "flower_gubn"),
)
FLOWERS_JUDGED = AssetChecks(
    FLOWERS.name, _judge_master(FLOWERS_CHECKS, "flower_id", FLOWERS, "flower_type_id")
)
BIDDING_JUDGED = AssetChecks(BIDDING.name, judge_bidding)

raw_checks = build_asset_checks(RAW_JUDGED)
# The masters' first/last seen dates are judged against the records, so after bidding_flowers.
flower_types_checks = build_asset_checks(FLOWER_TYPES_JUDGED, additional_deps=(BIDDING.name,))
flowers_checks = build_asset_checks(FLOWERS_JUDGED, additional_deps=(BIDDING.name,))
bidding_checks = build_asset_checks(BIDDING_JUDGED)
flower_auction_checks = [raw_checks, flower_types_checks, flowers_checks, bidding_checks]


def _freshness_checks() -> list[dg.AssetChecksDefinition]:
    """The latest auction date must be in bidding_flowers by 09:00 KST, two hours after the
    schedule. Only with a service key: sample mode never has yesterday's auction date."""
    if not settings.is_live():
        return []
    # Dagster marks this builder superseded by FreshnessPolicy, which judges when an asset last
    # materialized, not whether the latest auction date is there: the check we mean.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return list(
            dg.build_time_partition_freshness_checks(
                assets=[dg.AssetKey(BIDDING.name)],
                deadline_cron="0 9 * * *",
                timezone=SEOUL_TIMEZONE,
            )
        )


freshness_checks = _freshness_checks()
