"""The market tables computed for crafted days, compared with values worked out by hand."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest

from flower_assets.market.price_index import chain_links, index_values
from flower_assets.market.prices import RECORD_COLUMNS, daily_item_prices, variety_price_changes

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 3), date(2024, 5, 6)
ROSE, MUM = 1, 2  # items 장미, 국화
RED, WHITE, BAEKMA = 11, 12, 21  # varieties


def record(day, item, variety, grade, quantity, total):
    names = {ROSE: "장미", MUM: "국화"}
    varieties = {RED: "레드", WHITE: "화이트", BAEKMA: "백마"}
    return {
        "auction_date": day,
        "flower_gubn": "절화",
        "flower_type_id": item,
        "item_name": names[item],
        "flower_id": variety,
        "variety_name": varieties[variety],
        "grade": grade,
        "quantity": quantity,
        "avg_price": round(total / quantity),
        "total_price": total,
    }


RECORDS = pl.DataFrame(
    [
        record(D1, ROSE, RED, "특1", 10, 100_000),
        record(D1, ROSE, RED, "상1", 10, 60_000),
        record(D2, ROSE, RED, "특1", 20, 240_000),
        record(D2, ROSE, WHITE, "특1", 10, 90_000),  # a variety first seen on D2
        record(D2, MUM, BAEKMA, "특", 5, 25_000),  # an item first seen on D2, one grade only
        record(D3, ROSE, RED, "특1", 10, 110_000),
        record(D3, ROSE, RED, "상1", 10, 70_000),  # missing on D2: its last time is D1
        record(D3, MUM, BAEKMA, "특", 5, 30_000),
    ],
    schema=RECORD_COLUMNS,
)


def row(frame: pl.DataFrame, **where: object) -> dict:
    (found,) = frame.filter(**where).iter_rows(named=True)
    return found


def test_daily_item_prices_by_hand():
    prices = daily_item_prices(RECORDS, [D2, D3])
    assert prices["auction_date"].unique().sort().to_list() == [D2, D3]
    rose = row(prices, auction_date=D3, flower_type_id=ROSE)
    assert (rose["quantity"], rose["total_price"], rose["avg_price"]) == (20, 180_000, 9_000)
    assert (rose["varieties_traded"], rose["grades_traded"]) == (1, 2)
    # D2: 330,000 won for 30 bundles = 11,000.
    assert (rose["prev_auction_date"], rose["prev_avg_price"]) == (D2, 11_000)
    assert (rose["change_vs_prev"], rose["change_vs_prev_pct"]) == (-2_000, -18.18)
    # D3−28 … D3−1 holds D1 and D2: (160,000 + 330,000) / (20 + 30) = 9,800.
    assert (rose["avg_price_28d"], rose["change_vs_28d"], rose["change_vs_28d_pct"]) == (
        9_800,
        -800,
        -8.16,
    )
    mum = row(prices, auction_date=D3, flower_type_id=MUM)
    assert (mum["avg_price"], mum["grades_traded"], mum["prev_avg_price"]) == (6_000, 1, 5_000)
    assert (mum["change_vs_prev_pct"], mum["avg_price_28d"], mum["change_vs_28d"]) == (
        20.0,
        5_000,
        1_000,
    )
    first = row(prices, auction_date=D2, flower_type_id=MUM)  # first seen: no history, no zeros
    assert first["avg_price"] == 5_000
    for column in ("prev_auction_date", "prev_avg_price", "change_vs_prev", "change_vs_prev_pct"):
        assert first[column] is None, column
    for column in ("avg_price_28d", "change_vs_28d", "change_vs_28d_pct"):
        assert first[column] is None, column


def test_variety_price_changes_by_hand():
    changes = variety_price_changes(RECORDS, [D2, D3])
    top = row(changes, auction_date=D3, flower_id=RED, grade="특1")
    assert (top["avg_price"], top["prev_auction_date"], top["prev_avg_price"]) == (
        11_000,
        D2,
        12_000,
    )
    assert (top["change_vs_prev"], top["change_vs_prev_pct"]) == (-1_000, -8.33)
    assert top["median_price_28d"] == 11_000  # median of 10,000 and 12,000
    # Missing on D2: compared with the last auction date it traded on, D1.
    second = row(changes, auction_date=D3, flower_id=RED, grade="상1")
    assert (second["prev_auction_date"], second["prev_avg_price"]) == (D1, 6_000)
    assert (second["change_vs_prev"], second["change_vs_prev_pct"], second["median_price_28d"]) == (
        1_000,
        16.67,
        6_000,
    )
    new = row(changes, auction_date=D2, flower_id=WHITE, grade="특1")
    assert new["prev_auction_date"] is None and new["change_vs_prev"] is None
    assert new["median_price_28d"] is None


def test_a_previous_trade_beyond_the_lookback_does_not_count():
    old = pl.DataFrame(
        [
            record(date(2023, 4, 1), ROSE, RED, "특1", 10, 50_000),
            record(D1, ROSE, RED, "특1", 10, 100_000),
        ],
        schema=RECORD_COLUMNS,
    )
    assert row(daily_item_prices(old, [D1]), flower_type_id=ROSE)["prev_auction_date"] is None
    assert row(variety_price_changes(old, [D1]), flower_id=RED)["prev_avg_price"] is None


def test_the_index_chain_over_a_crafted_week_equals_the_hand_computed_value():
    links = chain_links(RECORDS, [D1, D2, D3])
    # D2 against D1: only 레드 특1 traded on both; it rose from 10,000 to 12,000.
    d2 = row(links, auction_date=D2)
    assert d2["matched_pairs"] == 1 and d2["chain_link"] == pytest.approx(math.log(1.2))
    assert d2["quantity_share"] == pytest.approx(20 / 35)
    # D3 against D2: 레드 특1 (12,000 → 11,000) and 백마 특 (5,000 → 6,000), weighted by their
    # shares of the matched value on both dates: 240,000 / 265,000 and 110,000 / 140,000 …
    w_red = 0.5 * (240 / 265 + 110 / 140)
    w_mum = 0.5 * (25 / 265 + 30 / 140)
    link = w_red * math.log(11 / 12) + w_mum * math.log(6 / 5)
    d3 = row(links, auction_date=D3)
    assert d3["matched_pairs"] == 2 and d3["chain_link"] == pytest.approx(link)
    assert d3["quantity_share"] == pytest.approx(15 / 25)
    first = row(links, auction_date=D1)
    assert (first["chain_link"], first["matched_pairs"]) == (0.0, 0)

    index = index_values(links)
    assert row(index, auction_date=D1)["index_value"] == pytest.approx(100.0)
    assert row(index, auction_date=D2)["index_value"] == pytest.approx(120.0)
    assert row(index, auction_date=D3)["index_value"] == pytest.approx(120.0 * math.exp(link))
    # Another base date: 100 there, the same ratios around it.
    rebased = index_values(links, base_date=D2)
    assert row(rebased, auction_date=D2)["index_value"] == pytest.approx(100.0)
    assert row(rebased, auction_date=D1)["index_value"] == pytest.approx(100 / 1.2)
