"""The market step for one auction date: the date's item prices, variety price changes and
category price index, replaced together in one transaction with the history they rest on.

The whole run's dates are computed at once from the auction records (pure functions of
`flower_assets.market`), reading `HISTORY_DAYS` of records before the first date for previous
auction dates and trailing windows. The chained index needs a link for every auction date of a
category from its first: links of dates outside the run come from the stored index when those
dates are current (`market.history`), and are computed from the records otherwise. So a build
is right whatever was loaded before it and in whatever order; builds of one warehouse take
turns (`Warehouse.market_lock`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from flower_assets.market.coverage import Coverage, report_coverage
from flower_assets.market.history import history_digests, stale_dates
from flower_assets.market.price_index import chain_links, index_values
from flower_assets.market.prices import (
    HISTORY_DAYS,
    daily_item_prices,
    variety_price_changes,
)
from flower_assets.market.report import render_report
from flower_assets.source.categories import Category
from flower_assets.steps.batch_logs import now
from flower_assets.steps.report import DateReport, dates_between
from flower_assets.transform import unchanged
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    MARKET_BUILDS,
    PROCESS_LOGS,
    RECORD_DIGESTS,
    VARIETY_PRICE_CHANGES,
    CategoryPriceIndex,
    DailyItemPrices,
    VarietyPriceChanges,
)

LINK_COLUMNS = ["auction_date", "flower_gubn", "chain_link", "matched_pairs", "quantity_share"]
# Numeric metadata key of each category's index value (drawn over the dates in the UI's Plots).
# Categories go by their Korean names in every metadata entry, as in the tables (flower_gubn).
INDEX_METADATA = {c.korean_name: f"index_{c.korean_name}" for c in Category}


def _records(wh: Warehouse, first: date, last: date) -> pl.DataFrame:
    return wh.market_records(first - timedelta(days=HISTORY_DAYS), last)


@dataclass(frozen=True)
class MarketHistory:
    """Each date's history digest now, and the one its market rows were built from."""

    current: dict[date, str]
    built: dict[date, str]
    built_by: dict[date, tuple[str, object]]  # run id and time of each date's build

    @classmethod
    def read(cls, wh: Warehouse, base: date | None) -> MarketHistory:
        builds = wh.read_table(MARKET_BUILDS)
        return cls(
            history_digests(wh.read_table(RECORD_DIGESTS), base),
            dict(builds.select("auction_date", "history_digest").rows()),
            {day: (run, at) for day, _, run, at in builds.rows()},
        )

    def stale(self) -> list[date]:
        return stale_dates(self.current, self.built)

    def is_current(self, day: date) -> bool:
        return self.current.get(day) == self.built.get(day)


def market_dates(wh: Warehouse, base: date | None, asked: list[date]) -> list[date]:
    """The dates a market build must cover: those asked for and every stale one, as one range.

    Whatever made them stale (a first load of an earlier date, a correction, a removal, by any
    run), first to last; empty when nothing is asked for and everything is current.
    """
    wanted = [*asked, *MarketHistory.read(wh, base).stale()]
    return dates_between(min(wanted), max(wanted)) if wanted else []


def chain(
    wh: Warehouse,
    records: pl.DataFrame,
    days: list[date],
    base: date | None,
    history: MarketHistory,
) -> pl.DataFrame:
    """The index rows of `days`: their links, chained with every other date's from the first.

    A stored link of a stale date may rest on another history: it is computed again.
    """
    links = chain_links(records, days)
    current = [day for day in history.built if history.is_current(day)]
    stored = wh.read_table(CATEGORY_PRICE_INDEX).filter(
        ~pl.col("auction_date").is_in(days) & pl.col("auction_date").is_in(current)
    )
    known = pl.concat([stored.select(LINK_COLUMNS), links])
    traded = wh.category_dates(days[-1])
    missing = traded.join(known, on=["auction_date", "flower_gubn"], how="anti")
    if missing.height:
        extra = missing["auction_date"].unique().sort().to_list()
        more = chain_links(_records(wh, extra[0], extra[-1]), extra)
        known = pl.concat([known, more.join(missing, on=["auction_date", "flower_gubn"])])
    index = index_values(known, base).filter(pl.col("base_date").is_not_null())
    return index.select(CATEGORY_PRICE_INDEX.columns)


@dataclass
class MarketStep:
    """Builds the market tables of one run's auction dates, date by date."""

    wh: Warehouse
    days: list[date]
    run_id: str
    base_date: date | None = None  # of the price index; None: each category's first date

    def __post_init__(self) -> None:
        # Read before the records: records changed after this leave the dates built stale.
        self.history = MarketHistory.read(self.wh, self.base_date)
        records = _records(self.wh, self.days[0], self.days[-1])
        self.item_prices = daily_item_prices(records, self.days)
        self.variety_changes = variety_price_changes(records, self.days)
        self.chained = chain(self.wh, records, self.days, self.base_date, self.history)
        self.index = self.chained.filter(pl.col("auction_date").is_in(self.days))

    def as_of(self, day: date) -> pl.DataFrame:
        """`flower_gubn, index_value` of each category's latest auction date up to `day`."""
        return (
            self.chained.filter(pl.col("auction_date") <= day)
            .sort("auction_date")
            .group_by("flower_gubn")
            .agg(pl.col("index_value").last())
            .sort("flower_gubn")
        )

    def load(self, day: date) -> dict[str, DateReport]:
        """Replace the date's rows of the three tables; each table's report for the date."""
        on_day = pl.col("auction_date") == day
        items = DailyItemPrices.validate(self.item_prices.filter(on_day))
        changes = VarietyPriceChanges.validate(self.variety_changes.filter(on_day))
        index = CategoryPriceIndex.validate(self.index.filter(on_day))
        digest = self.history.current.get(day)
        build = pl.DataFrame(
            [(day, digest, self.run_id, now())] if digest else [],
            schema=MARKET_BUILDS.polars_schema,
            orient="row",
        )
        self.wh.replace_partition(
            day,
            {
                DAILY_ITEM_PRICES: items,
                VARIETY_PRICE_CHANGES: changes,
                CATEGORY_PRICE_INDEX: index,
                MARKET_BUILDS: build,
            },
        )
        quantity = dict(items.group_by("flower_gubn").agg(pl.col("quantity").sum()).rows())
        risers = changes.filter(pl.col("change_vs_prev") > 0).height
        fallers = changes.filter(pl.col("change_vs_prev") < 0).height
        return {
            DAILY_ITEM_PRICES.name: DateReport(
                {
                    "dagster/row_count": items.height,
                    "quantity_per_category": quantity,
                    "items_without_history": items["prev_auction_date"].null_count(),
                }
            ),
            VARIETY_PRICE_CHANGES.name: DateReport(
                {
                    "dagster/row_count": changes.height,
                    "pairs_up": risers,
                    "pairs_down": fallers,
                    "pairs_without_previous_date": changes["prev_auction_date"].null_count(),
                }
            ),
            CATEGORY_PRICE_INDEX.name: DateReport(
                {
                    "dagster/row_count": index.height,
                    # Every date carries each category's index as of that date (its latest auction
                    # date's), so the Plots draw one unbroken line per category.
                    **{
                        INDEX_METADATA[gubn]: round(value, 4)
                        for gubn, value in self.as_of(day).rows()
                    },
                    "matched_pairs": dict(index.select("flower_gubn", "matched_pairs").rows()),
                }
            ),
        }


# The market report the pipeline keeps current: the year up to its latest auction date, which
# holds both seasonal peaks (graduation in February, Parents' Day in May).
REPORT_DAYS = 366


@dataclass(frozen=True)
class Report:
    html: str
    coverage: Coverage  # which dates of its period are loaded


def build_report(wh: Warehouse, first: date, last: date) -> Report:
    """The market report of auction dates first..last, from the stored market tables.

    Dates not loaded (`market.coverage`, judged from the batch logs) are named, never taken for
    days without an auction; raises `NothingLoaded` when no date of the period is loaded.
    """
    index = wh.read_range(CATEGORY_PRICE_INDEX, first, last, CATEGORY_PRICE_INDEX.columns)
    items = wh.read_range(DAILY_ITEM_PRICES, first, last, DAILY_ITEM_PRICES.columns)
    changes = wh.read_range(VARIETY_PRICE_CHANGES, first, last, VARIETY_PRICE_CHANGES.columns)
    uploads, processes = wh.batch_logs(first, last)
    processed = unchanged.processed(processes, BIDDING.name)
    built = set(items["auction_date"])
    # Records matter only where the market tables hold nothing: no auction, or not built yet.
    # Those dates are few (Sundays, holidays), each one indexed look-up.
    records = {
        day
        for day in processed
        if first <= day <= last and day not in built and wh.read_partition(BIDDING, day).height
    }
    coverage = report_coverage(
        first, last, unchanged.stored_raw(uploads), processed, records, built
    )
    return Report(render_report(index, items, changes, first, last, coverage), coverage)


def report_html(wh: Warehouse, first: date, last: date) -> str:
    """The market report's HTML (`build_report`)."""
    return build_report(wh, first, last).html


def latest_report_period(wh: Warehouse) -> tuple[date, date] | None:
    """The period of the report kept current: `REPORT_DAYS` up to the latest loaded date.

    Loaded dates include those without an auction, so the period ends on the date last loaded
    (a Saturday, say), not on the last date that traded. None while no date is loaded.
    """
    last = wh.last_auction_date(PROCESS_LOGS)
    if last is None:
        return None
    first_loaded = wh.first_auction_date(PROCESS_LOGS)
    return max(first_loaded, last - timedelta(days=REPORT_DAYS - 1)), last
