"""The market tables' checks, each judged against the auction records and their history."""

from collections.abc import Callable, Iterator
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
from flower_assets.quality import market
from flower_assets.quality.catalog import (
    BUILT_ON_CURRENT_HISTORY,
    CATEGORY_PRICE_INDEX_CHECKS,
    DAILY_ITEM_PRICES_CHECKS,
    VARIETY_PRICE_CHANGES_CHECKS,
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


def _judge_against_records(
    table: Table, check: str, rule: Callable[[pl.DataFrame, pl.DataFrame], Outcome]
) -> Judge:
    """A market table's rule against the date's auction records, as the market step reads them."""

    def judge(
        context: JudgeContext,
        wh: Warehouse,
        days: list[date],
        settings: CheckSettings,
    ) -> Iterator[tuple[date, dict[str, Outcome]]]:
        records = by_date(wh.read_sql("market_records", (days[0], days[-1]), RECORD_COLUMNS))
        stored = by_date(wh.read_range(table, days[0], days[-1], table.columns))
        no_records = pl.DataFrame(schema=RECORD_COLUMNS)
        for day in days:
            today = stored.get(day, table.empty())
            yield day, {check: rule(today, records.get(day, no_records))}

    return judge


def with_history(judge: Judge) -> Judge:
    """A market table's rules, and whether each date is built on its current history."""

    def judged(
        context: JudgeContext,
        wh: Warehouse,
        days: list[date],
        settings: CheckSettings,
    ) -> Iterator[tuple[date, dict[str, Outcome]]]:
        history = MarketHistory.read(wh, settings.index_base)
        for day, outcomes in judge(context, wh, days, settings):
            built = market.built_on_current_history(
                history.current.get(day), history.built.get(day), history.built_by.get(day)
            )
            yield day, {BUILT_ON_CURRENT_HISTORY.name: built, **outcomes}

    return judged


def judge_price_index(
    context: JudgeContext,
    wh: Warehouse,
    days: list[date],
    settings: CheckSettings,
) -> Iterator[tuple[date, dict[str, Outcome]]]:
    index = wh.read_table(CATEGORY_PRICE_INDEX).sort("auction_date")
    for day in days:
        today = index.filter(pl.col("auction_date") == day)
        before = index.filter(pl.col("auction_date") < day).group_by("flower_gubn").last()
        yield (
            day,
            {
                "chain_consistent": market.chain_consistent(today, before),
                "links_rest_on_enough_volume": market.matched_share(today),
            },
        )


ITEM_PRICES_JUDGED = AssetChecks(
    DAILY_ITEM_PRICES.name,
    DAILY_ITEM_PRICES_CHECKS,
    with_history(
        _judge_against_records(
            DAILY_ITEM_PRICES, "reconciles_with_records", market.prices_reconcile
        )
    ),
)
PRICE_CHANGES_JUDGED = AssetChecks(
    VARIETY_PRICE_CHANGES.name,
    VARIETY_PRICE_CHANGES_CHECKS,
    with_history(
        _judge_against_records(
            VARIETY_PRICE_CHANGES, "covers_every_record", market.changes_cover_records
        )
    ),
)
PRICE_INDEX_JUDGED = AssetChecks(
    CATEGORY_PRICE_INDEX.name, CATEGORY_PRICE_INDEX_CHECKS, with_history(judge_price_index)
)


item_prices_checks = build_asset_checks(ITEM_PRICES_JUDGED)
price_changes_checks = build_asset_checks(PRICE_CHANGES_JUDGED)
price_index_checks = build_asset_checks(PRICE_INDEX_JUDGED)
market_checks = [item_prices_checks, price_changes_checks, price_index_checks]
