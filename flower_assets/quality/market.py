"""The market tables' rules: each judges one auction date, can fail on real data, and is named
like the check it decides (its declaration is in `catalog.py`).

A market table that was not rebuilt after its records changed (a correction, a reload) no
longer adds up to them: these rules are how that shows.
"""

from __future__ import annotations

import math

import polars as pl

from flower_assets.market.price_index import BASE_VALUE
from flower_assets.quality.integrity import Outcome, sample_of

# A chain link resting on pairs that carry less of the day's quantity than this says little.
MIN_MATCHED_QUANTITY_SHARE = 0.25
# Relative tolerance of the chain's arithmetic (doubles through exp and log).
CHAIN_TOLERANCE = 1e-9


def _per_category(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return dict(frame.group_by("flower_gubn").agg(pl.col(column).sum()).rows())


def reconciles_with_records(item_prices: pl.DataFrame, records: pl.DataFrame) -> Outcome:
    """Σ quantity and Σ total_price per category in daily_item_prices equal bidding_flowers'."""
    wrong = []
    totals = {column: _per_category(records, column) for column in ("quantity", "total_price")}
    for column, stored in totals.items():
        marts = _per_category(item_prices, column)
        for gubn in sorted(set(marts) | set(stored)):
            if marts.get(gubn, 0) != stored.get(gubn, 0):
                wrong.append(
                    {
                        "flower_gubn": gubn,
                        "column": column,
                        "daily_item_prices": marts.get(gubn, 0),
                        "bidding_flowers": stored.get(gubn, 0),
                    }
                )
    summary = (
        f"quantity and total_price per category equal bidding_flowers' ({records.height} records)"
        if not wrong
        else f"{len(wrong)} category totals differ from bidding_flowers: rebuild the date"
    )
    return Outcome(
        not wrong,
        summary,
        {"categories": len(totals["quantity"])},
        sample_of(pl.DataFrame(wrong)) if wrong else None,
    )


def covers_every_record(changes: pl.DataFrame, records: pl.DataFrame) -> Outcome:
    """One variety_price_changes row per record of the date, at the record's price."""
    key = ["flower_id", "grade"]
    mine = changes.select(*key, "quantity", "avg_price")
    theirs = records.select(*key, "quantity", "avg_price")
    missing = theirs.join(mine, on=[*key, "quantity", "avg_price"], how="anti")
    extra = mine.join(theirs, on=[*key, "quantity", "avg_price"], how="anti")
    passed = not missing.height and not extra.height
    summary = (
        f"all {records.height} records of the date are covered at their prices"
        if passed
        else f"{missing.height} records missing or at another price, {extra.height} rows "
        "without their record: rebuild the date"
    )
    meta = {"records": records.height, "missing": missing.height, "extra": extra.height}
    return Outcome(passed, summary, meta, sample_of(pl.concat([missing, extra])))


def chain_consistent(index_today: pl.DataFrame, index_before: pl.DataFrame) -> Outcome:
    """index_value = the category's previous index_value × exp(chain_link), BASE_VALUE on the
    base date."""
    wrong = []
    previous = {
        gubn: row
        for gubn, *row in index_before.select("flower_gubn", "auction_date", "index_value").rows()
    }
    for gubn, day, value, link, base in index_today.select(
        "flower_gubn", "auction_date", "index_value", "chain_link", "base_date"
    ).rows():
        if day == base:
            expected = BASE_VALUE
        elif gubn in previous and previous[gubn][0] >= base:
            expected = previous[gubn][1] * math.exp(link)
        else:
            continue  # the base is later; its chain is judged on the dates after it
        if not math.isclose(value, expected, rel_tol=CHAIN_TOLERANCE):
            wrong.append({"flower_gubn": gubn, "index_value": value, "expected": expected})
    summary = (
        f"the chain holds for the {index_today.height} categories of the date"
        if not wrong
        else f"{len(wrong)} categories break the chain from their previous auction date: an "
        "earlier date changed; rebuild this and the later dates"
    )
    return Outcome(
        not wrong,
        summary,
        {"broken": len(wrong)},
        sample_of(pl.DataFrame(wrong)) if wrong else None,
    )


def links_rest_on_enough_volume(index_today: pl.DataFrame) -> Outcome:
    """Each chain link rests on pairs carrying at least MIN_MATCHED_QUANTITY_SHARE of the
    category's quantity."""
    linked = index_today.filter(pl.col("auction_date") != pl.col("base_date"))
    thin = linked.filter(pl.col("quantity_share") < MIN_MATCHED_QUANTITY_SHARE)
    summary = (
        f"every link rests on at least {MIN_MATCHED_QUANTITY_SHARE:.0%} of its category's quantity"
        if not thin.height
        else f"{thin.height} categories link through pairs carrying less than "
        f"{MIN_MATCHED_QUANTITY_SHARE:.0%} of their quantity: their index moves on little"
    )
    return Outcome(
        not thin.height,
        summary,
        {"thin_links": thin.height},
        sample_of(thin.select("flower_gubn", "matched_pairs", "quantity_share")),
    )


def built_on_current_history(
    current: str | None, built: str | None, built_by: tuple[str, object] | None
) -> Outcome:
    """The date's market rows were built from the auction records its history holds now.

    `current`, `built`: the date's history digest now and when it was built
    (`market.history`), None without records or without a build.
    """
    when = f" (built at {built_by[1]} by run {built_by[0]})" if built_by else ""
    if current == built:
        summary = (
            "built from the auction records up to this date as they are now" + when
            if current
            else "no auction records and no market rows"
        )
        return Outcome(True, summary)
    if built is None:
        summary = "the date has auction records but its market rows were never built"
    elif current is None:
        summary = f"built while the date had auction records it no longer has{when}"
    else:
        summary = (
            "an earlier date's or this date's auction records changed (first loaded, corrected "
            f"or removed) after its market rows were built{when}"
        )
    return Outcome(False, f"{summary}: rebuild it with flower_market_job", {"stale": True})
