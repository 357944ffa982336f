"""Daily item prices and variety price changes: the service-ready price tables (pure polars).

Definitions (the README's *Market layer* repeats them for analysts):
- An item's daily `avg_price` is quantity-weighted: round(Σ total_price / Σ quantity) over the
  item's records of the date, rounded half up to whole won.
- The *previous auction date* of an item (of a variety and grade) is the latest earlier auction
  date on which it traded, searched back `LOOKBACK_DAYS`; none further back counts.
- The *trailing 28-day* window of a date D is the auction dates D−28 … D−1 (D itself excluded).
  For an item its average is quantity-weighted over the window's records; for a variety and
  grade it is the median of the window's average prices.
- Changes are the date's price minus the reference, in won and in percent of the reference.
  Without a reference (no earlier trade, an empty window, a reference of 0 won for a percent)
  they are null, never 0.
"""

from __future__ import annotations

from datetime import date

import polars as pl

# How far back "the previous auction date" is searched: a year covers seasonal items.
LOOKBACK_DAYS = 365
TRAILING_DAYS = 28
# The records a market step reads for its first auction date.
HISTORY_DAYS = LOOKBACK_DAYS

RECORD_COLUMNS = {
    "auction_date": pl.Date,
    "flower_gubn": pl.String,
    "flower_type_id": pl.Int64,
    "item_name": pl.String,
    "flower_id": pl.Int64,
    "variety_name": pl.String,
    "grade": pl.String,
    "quantity": pl.Int64,
    "avg_price": pl.Int64,
    "total_price": pl.Int64,
}


def won(total: pl.Expr, quantity: pl.Expr) -> pl.Expr:
    """total / quantity rounded half up to whole won (exact integer arithmetic); null if 0."""
    return pl.when(quantity > 0).then((2 * total + quantity) // (2 * quantity)).otherwise(None)


def _percent(change: pl.Expr, reference: pl.Expr) -> pl.Expr:
    return pl.when(reference != 0).then((change / reference * 100).round(2)).otherwise(None)


def _previous(keys: list[str]) -> list[pl.Expr]:
    """The previous auction date of each row's key and its average price (within the lookback)."""
    earlier = pl.col("auction_date").shift(1).over(keys, order_by="auction_date")
    within = (pl.col("auction_date") - earlier).dt.total_days() <= LOOKBACK_DAYS
    return [
        pl.when(within).then(earlier).alias("prev_auction_date"),
        pl.when(within)
        .then(pl.col("avg_price").shift(1).over(keys, order_by="auction_date"))
        .alias("prev_avg_price"),
    ]


def _changes(reference: str, won_column: str, percent_column: str) -> list[pl.Expr]:
    change = pl.col("avg_price") - pl.col(reference)
    return [change.alias(won_column), _percent(change, pl.col(reference)).alias(percent_column)]


def _trailing(frame: pl.DataFrame, keys: list[str], *aggregations: pl.Expr) -> pl.DataFrame:
    """The aggregations over each key's rows of the 28 days before each date."""
    window = frame.sort([*keys, "auction_date"]).rolling(
        index_column="auction_date", period=f"{TRAILING_DAYS}d", closed="left", group_by=keys
    )
    return window.agg(*aggregations)


def daily_item_prices(records: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """One row per auction date in `days` and item that traded on it.

    `records` are the auction records (`RECORD_COLUMNS`) from `HISTORY_DAYS` before the first
    date through the last.
    """
    keys = ["flower_type_id"]
    daily = records.group_by("auction_date", "flower_type_id").agg(
        pl.col("flower_gubn").first(),
        pl.col("item_name").first().alias("name"),
        pl.col("quantity").sum(),
        pl.col("total_price").sum(),
        pl.col("flower_id").n_unique().cast(pl.Int64).alias("varieties_traded"),
        pl.col("grade").n_unique().cast(pl.Int64).alias("grades_traded"),
    )
    daily = daily.with_columns(won(pl.col("total_price"), pl.col("quantity")).alias("avg_price"))
    trailing = _trailing(
        daily,
        keys,
        pl.col("total_price").sum().alias("_total_28d"),
        pl.col("quantity").sum().alias("_quantity_28d"),
    )
    return (
        daily.join(trailing, on=[*keys, "auction_date"], how="left")
        .with_columns(
            *_previous(keys),
            won(pl.col("_total_28d"), pl.col("_quantity_28d")).alias("avg_price_28d"),
        )
        .with_columns(
            *_changes("prev_avg_price", "change_vs_prev", "change_vs_prev_pct"),
            *_changes("avg_price_28d", "change_vs_28d", "change_vs_28d_pct"),
        )
        .filter(pl.col("auction_date").is_in(days))
        .select(
            "auction_date",
            "flower_type_id",
            "flower_gubn",
            "name",
            "quantity",
            "total_price",
            "avg_price",
            "varieties_traded",
            "grades_traded",
            "prev_auction_date",
            "prev_avg_price",
            "change_vs_prev",
            "change_vs_prev_pct",
            "avg_price_28d",
            "change_vs_28d",
            "change_vs_28d_pct",
        )
        .sort("auction_date", "flower_gubn", "name")
    )


def variety_price_changes(records: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """One row per auction date in `days`, variety and grade: today against last time.

    `records` as for `daily_item_prices`.
    """
    keys = ["flower_id", "grade"]
    trailing = _trailing(records, keys, pl.col("avg_price").median().alias("_median_28d"))
    median = pl.col("_median_28d")
    return (
        records.join(trailing, on=[*keys, "auction_date"], how="left")
        .with_columns(
            *_previous(keys),
            # Half up to whole won, like every price here (a median of two can end in .5).
            pl.when(median.is_not_null())
            .then((median + 0.5).floor().cast(pl.Int64))
            .alias("median_price_28d"),
        )
        .with_columns(*_changes("prev_avg_price", "change_vs_prev", "change_vs_prev_pct"))
        .filter(pl.col("auction_date").is_in(days))
        .select(
            "auction_date",
            "flower_gubn",
            "flower_type_id",
            "item_name",
            "flower_id",
            "variety_name",
            "grade",
            "quantity",
            "avg_price",
            "prev_auction_date",
            "prev_avg_price",
            "change_vs_prev",
            "change_vs_prev_pct",
            "median_price_28d",
        )
        .sort("auction_date", "flower_gubn", "item_name", "variety_name", "grade")
    )
