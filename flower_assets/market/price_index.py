"""The category price index: a chained Törnqvist index over matched variety-and-grade pairs.

Why Törnqvist: it is a superlative index (it approximates any reasonable cost-of-living index),
weights each pair by its share of the traded value on *both* dates, so neither date's basket
dominates, and its logarithm is a sum: a chain link is one weighted sum of log price ratios, and
the chain is a cumulative sum. Fisher would serve as well; Törnqvist is simpler to chain and
to audit.

Per category, for each auction date t and the category's previous auction date s:
- matched pairs: the (variety, grade) pairs traded on both s and t, each with a positive
  average price;
- w_i,s, w_i,t: the pair's share of the matched pairs' total_price on s and on t;
- chain link: ln(I_t / I_s) = Σ_i ½ (w_i,s + w_i,t) · ln(p_i,t / p_i,s), p = avg_price;
  0 (the index carried forward) when no pair matches;
- quantity_share: the matched pairs' quantity on t over the category's whole quantity on t.
The index is 100 on the base date (by default the category's first auction date) and
I_t = 100 · exp(Σ links up to t − Σ links up to the base date).
"""

from __future__ import annotations

from datetime import date

import polars as pl

BASE_VALUE = 100.0

PAIR = ["flower_id", "grade"]


def chain_links(records: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """`auction_date, flower_gubn, chain_link, matched_pairs, quantity_share` for `days`.

    `records` hold each category's auction records of the dates in `days` and of the auction
    date before each of them (`flower_gubn, auction_date, flower_id, grade, quantity,
    avg_price, total_price`).
    """
    dates = (
        records.select("flower_gubn", "auction_date").unique().sort("flower_gubn", "auction_date")
    )
    pairs = dates.with_columns(
        pl.col("auction_date").shift(1).over("flower_gubn").alias("previous_date")
    ).filter(pl.col("auction_date").is_in(days))
    priced = records.filter(pl.col("avg_price") > 0)
    today = priced.select(
        "flower_gubn", "auction_date", *PAIR, "avg_price", "total_price", "quantity"
    )
    before = priced.select(
        "flower_gubn",
        pl.col("auction_date").alias("previous_date"),
        *PAIR,
        pl.col("avg_price").alias("previous_price"),
        pl.col("total_price").alias("previous_value"),
    )
    matched = (
        pairs.join(today, on=["flower_gubn", "auction_date"])
        .join(before, on=["flower_gubn", "previous_date", *PAIR])
        .with_columns(
            (pl.col("total_price") / pl.col("total_price").sum())
            .over("flower_gubn", "auction_date")
            .alias("w_t"),
            (pl.col("previous_value") / pl.col("previous_value").sum())
            .over("flower_gubn", "auction_date")
            .alias("w_s"),
        )
        .group_by("flower_gubn", "auction_date")
        .agg(
            (
                0.5
                * (pl.col("w_s") + pl.col("w_t"))
                * (pl.col("avg_price") / pl.col("previous_price")).log()
            )
            .sum()
            .alias("chain_link"),
            pl.len().cast(pl.Int64).alias("matched_pairs"),
            pl.col("quantity").sum().alias("matched_quantity"),
        )
    )
    traded = records.group_by("flower_gubn", "auction_date").agg(
        pl.col("quantity").sum().alias("all_quantity")
    )
    return (
        pairs.select("flower_gubn", "auction_date")
        .join(matched, on=["flower_gubn", "auction_date"], how="left")
        .join(traded, on=["flower_gubn", "auction_date"], how="left")
        .select(
            "auction_date",
            "flower_gubn",
            pl.col("chain_link").fill_null(0.0),
            pl.col("matched_pairs").fill_null(0),
            (pl.col("matched_quantity").fill_null(0) / pl.col("all_quantity")).alias(
                "quantity_share"
            ),
        )
        .sort("auction_date", "flower_gubn")
    )


def index_values(links: pl.DataFrame, base_date: date | None = None) -> pl.DataFrame:
    """`links` (every auction date of each category, in any order) with `index_value` and the
    `base_date` it is 100 on.

    The base is the category's first auction date on or after `base_date`, or its first
    auction date when `base_date` is None; a category without one has null for both.
    """
    chained = links.sort("flower_gubn", "auction_date").with_columns(
        pl.col("chain_link").cum_sum().over("flower_gubn").alias("_level")
    )
    base = (
        chained.filter(pl.lit(True) if base_date is None else pl.col("auction_date") >= base_date)
        .group_by("flower_gubn")
        .agg(
            pl.col("_level").sort_by("auction_date").first().alias("_base"),
            pl.col("auction_date").min().alias("base_date"),
        )
    )
    return (
        chained.join(base, on="flower_gubn", how="left")
        .with_columns(
            (BASE_VALUE * (pl.col("_level") - pl.col("_base")).exp()).alias("index_value")
        )
        .drop("_level", "_base")
    )
