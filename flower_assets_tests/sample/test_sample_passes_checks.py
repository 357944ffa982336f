"""The whole sample period, judged by the checks' own rules: it passes them, calibration unchanged.

Every rule whose verdict depends on the market's data (not on the pipeline's bookkeeping) runs
on every generated sample date, as the Dagster checks do after `flower-assets materialize`:
the raw checks, the auction records' price rules and anomalies, and the price index's links.
The rules that compare one stored table with another (reconciliation, chain arithmetic, first
and last seen dates, built on current history) hold by construction and are tested with the
pipeline. A (check, date) pair that fails here is a deliberate fault of the sample, listed in
`DELIBERATE` with what it shows, or a bug of the synthetic market.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from functools import cache

import polars as pl

from flower_assets import settings
from flower_assets.market.price_index import chain_links, index_values
from flower_assets.quality import catalog, integrity, market
from flower_assets.sample.days import SAMPLE_PERIOD, sample_rows
from flower_assets.source.categories import Category
from flower_assets.source.envelope import ApiItem
from flower_assets.transform.names import canonical_name
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.raw import item_fields, raw_rows

# (check, auction date) pairs the sample fails on purpose, and what each shows. None for now:
# the sample is an ordinary market, and the faults are shown by the tests that inject them.
DELIBERATE: dict[tuple[str, date], str] = {}
MAX_REJECTED_SHARE = settings.max_rejected_share.default
FETCHED = datetime(2024, 9, 1, tzinfo=UTC)


def sample_days() -> list[date]:
    first, last = SAMPLE_PERIOD
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def raw_of(day: date) -> pl.DataFrame:
    """The date's raw rows, as the raw step stores them from the sample server's answers."""
    frames = []
    for category in Category:
        items = [
            ApiItem(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode(), row)
            for row in sample_rows(day, category)
        ]
        frames.append(raw_rows(items, day, category, FETCHED))
    return item_fields(pl.concat(frames))


def records_of(loadable: pl.DataFrame) -> pl.DataFrame:
    """Auction records as bidding_flowers holds them, a variety's id being its canonical key."""
    return loadable.select(
        "auction_date",
        "flower_gubn",
        pl.concat_str(
            "flower_gubn",
            canonical_name(pl.col("flower_type")),
            canonical_name(pl.col("flower_name")),
            separator="|",
        ).alias("flower_id"),
        canonical_name(pl.col("grade")).alias("grade"),
        "quantity",
        "max_price",
        "min_price",
        "avg_price",
        "total_price",
    )


@cache
def sample_raw() -> tuple[tuple[date, pl.DataFrame], ...]:
    return tuple((day, raw_of(day)) for day in sample_days())


@cache
def sample_records() -> pl.DataFrame:
    return pl.concat(records_of(split_loadable(raw)[0]) for _, raw in sample_raw())


@cache
def sample_index() -> pl.DataFrame:
    """category_price_index over the whole sample, based on each category's first date."""
    return index_values(chain_links(sample_records(), sample_days()))


@cache
def judged() -> dict[tuple[str, date], integrity.Outcome]:
    """Every data-dependent rule's outcome on every sample date, as the Dagster checks judge."""
    outcomes: dict[tuple[str, date], integrity.Outcome] = {}
    calendar = pl.DataFrame(
        schema={"auction_date": pl.Date, "flower_gubn": pl.String, "rows": pl.Int64}
    )
    for day, decoded in sample_raw():
        _, rejected = split_loadable(decoded)
        counts = (
            decoded.group_by("flower_gubn")
            .len("rows")
            .select(pl.lit(day).alias("auction_date"), "flower_gubn", pl.col("rows").cast(pl.Int64))
        )
        judged_raw = catalog.judge_raw(day, decoded, rejected, calendar, MAX_REJECTED_SHARE)
        outcomes |= {(check.name, day): outcome for check, outcome in judged_raw.items()}
        calendar = pl.concat([calendar, counts])
    records = sample_records()
    history = records.select("auction_date", "flower_id", "grade", "avg_price")
    index = sample_index()
    for day in sample_days():
        today = records.filter(pl.col("auction_date") == day)
        window = history.filter(
            pl.col("auction_date").is_between(integrity.history_window_start(day), day, "left")
        )
        outcomes[("prices_ordered", day)] = integrity.prices_ordered(today)
        outcomes[("totals_consistent", day)] = integrity.totals_consistent(today)
        outcomes[("price_anomalies", day)] = integrity.price_anomalies(today, window, day)
        outcomes[("links_rest_on_enough_volume", day)] = market.links_rest_on_enough_volume(
            index.filter(pl.col("auction_date") == day)
        )
    return outcomes


def test_the_sample_passes_every_data_check_but_its_deliberate_faults():
    failing = {pair: o.summary for pair, o in judged().items() if not o.passed}
    assert set(failing) == set(DELIBERATE), failing


def test_consecutive_auction_days_trade_mostly_the_same_varieties_and_grades():
    """Well above the check's 25%: growers send a variety for weeks, not on a whim."""
    links = sample_index().filter(pl.col("auction_date") != pl.col("base_date"))
    shares = dict(links.group_by("flower_gubn").agg(pl.col("quantity_share").min()).rows())
    assert all(share >= 0.4 for share in shares.values()), shares
