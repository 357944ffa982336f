"""The market tables' checks, each judged against the auction records and their history."""

from collections.abc import Iterator
from datetime import date

import polars as pl

from flower_assets.defs.judging import (
    AssetChecks,
    CheckSettings,
    Judge,
    JudgeContext,
    build_asset_checks,
    by_date,
)
from flower_assets.market.prices import RECORD_COLUMNS
from flower_assets.quality.catalog import (
    BUILT_ON_CURRENT_HISTORY,
    CHAIN_CONSISTENT,
    COVERS_EVERY_RECORD,
    LINKS_REST_ON_ENOUGH_VOLUME,
    RECONCILES_WITH_RECORDS,
    Check,
)
from flower_assets.quality.integrity import Outcome
from flower_assets.steps.market import MarketHistory
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    VARIETY_PRICE_CHANGES,
    Table,
)


def _judge_against_records(table: Table, check: Check) -> Judge:
    """A market table's check against the date's auction records, as the market step reads them."""

    def judge(
        context: JudgeContext,
        wh: Warehouse,
        days: list[date],
        settings: CheckSettings,
    ) -> Iterator[tuple[date, dict[Check, Outcome]]]:
        records = by_date(wh.market_records(days[0], days[-1]))
        stored = by_date(wh.read_range(table, days[0], days[-1], table.columns))
        no_records = pl.DataFrame(schema=RECORD_COLUMNS)
        for day in days:
            today = stored.get(day, table.empty())
            yield day, {check: check.judge(today, records.get(day, no_records))}

    return judge


def with_history(judge: Judge) -> Judge:
    """A market table's rules, and whether each date is built on its current history."""

    def judged(
        context: JudgeContext,
        wh: Warehouse,
        days: list[date],
        settings: CheckSettings,
    ) -> Iterator[tuple[date, dict[Check, Outcome]]]:
        history = MarketHistory.read(wh, settings.index_base)
        for day, outcomes in judge(context, wh, days, settings):
            built = BUILT_ON_CURRENT_HISTORY.judge(
                history.current.get(day), history.built.get(day), history.built_by.get(day)
            )
            yield day, {BUILT_ON_CURRENT_HISTORY: built, **outcomes}

    return judged


def judge_price_index(
    context: JudgeContext,
    wh: Warehouse,
    days: list[date],
    settings: CheckSettings,
) -> Iterator[tuple[date, dict[Check, Outcome]]]:
    index = wh.read_table(CATEGORY_PRICE_INDEX).sort("auction_date")
    for day in days:
        today = index.filter(pl.col("auction_date") == day)
        before = index.filter(pl.col("auction_date") < day).group_by("flower_gubn").last()
        yield (
            day,
            {
                CHAIN_CONSISTENT: CHAIN_CONSISTENT.judge(today, before),
                LINKS_REST_ON_ENOUGH_VOLUME: LINKS_REST_ON_ENOUGH_VOLUME.judge(today),
            },
        )


ITEM_PRICES_JUDGED = AssetChecks(
    DAILY_ITEM_PRICES.name,
    with_history(_judge_against_records(DAILY_ITEM_PRICES, RECONCILES_WITH_RECORDS)),
)
PRICE_CHANGES_JUDGED = AssetChecks(
    VARIETY_PRICE_CHANGES.name,
    with_history(_judge_against_records(VARIETY_PRICE_CHANGES, COVERS_EVERY_RECORD)),
)
PRICE_INDEX_JUDGED = AssetChecks(CATEGORY_PRICE_INDEX.name, with_history(judge_price_index))


item_prices_checks = build_asset_checks(ITEM_PRICES_JUDGED)
price_changes_checks = build_asset_checks(PRICE_CHANGES_JUDGED)
price_index_checks = build_asset_checks(PRICE_INDEX_JUDGED)
market_checks = [item_prices_checks, price_changes_checks, price_index_checks]
