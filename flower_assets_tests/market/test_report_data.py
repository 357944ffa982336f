"""The numbers behind the market report's sections (`report_data`), on frames small enough
to check by hand. The rendered page: test_report.py."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from flower_assets.market.coverage import Coverage
from flower_assets.market.report_data import (
    CategoryTotals,
    IndexPoint,
    aligned,
    categories_in,
    category_totals,
    coverage_counts,
    daily_quantities,
    index_summaries,
    loaded_weekdays,
    mean_daily_quantity,
    mover_windows,
    movers,
    peak_stats,
    peak_windows,
    rebased_index,
    seasonal_windows,
    weekday_profile,
)

FIRST, LAST = date(2024, 2, 1), date(2024, 5, 31)  # test_report.py's crafted market


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def prices(*rows: tuple[date, str, int, int]) -> pl.DataFrame:
    """Daily item prices: (auction date, category, quantity, total price)."""
    return pl.DataFrame(
        [
            {"auction_date": d, "flower_gubn": g, "quantity": q, "total_price": v}
            for d, g, q, v in rows
        ],
        schema={
            "auction_date": pl.Date,
            "flower_gubn": pl.String,
            "quantity": pl.Int64,
            "total_price": pl.Int64,
        },
    )


def index(*rows: tuple[date, str, float]) -> pl.DataFrame:
    """Index values (auction date, category, index_value), 3 matched pairs and share 0.5 each."""
    return pl.DataFrame(
        [
            {
                "auction_date": d,
                "flower_gubn": g,
                "index_value": v,
                "matched_pairs": 3,
                "quantity_share": 0.5,
            }
            for d, g, v in rows
        ],
        schema={
            "auction_date": pl.Date,
            "flower_gubn": pl.String,
            "index_value": pl.Float64,
            "matched_pairs": pl.Int64,
            "quantity_share": pl.Float64,
        },
    )


# ---------------------------------------------------------------------------------------------
# Risers and fallers: the rule, by hand


def change(day: date, flower_id: int, grade: str, quantity: int, price: int, gubn="절화"):
    return {
        "auction_date": day,
        "flower_gubn": gubn,
        "item_name": "장미",
        "flower_id": flower_id,
        "variety_name": f"v{flower_id}",
        "grade": grade,
        "quantity": quantity,
        "avg_price": price,
    }


def test_risers_and_fallers_rule_by_hand():
    first, last = date(2024, 3, 1), date(2024, 3, 31)  # fortnights 03-01…03-14, 03-18…03-31
    early, early2, late, late2 = (
        date(2024, 3, 4),
        date(2024, 3, 11),
        date(2024, 3, 25),
        date(2024, 3, 29),
    )
    middle = date(2024, 3, 15)  # in neither fortnight
    rows = [
        # Each fortnight's median quantity in 절화 is 40 bundles.
        # 1: 10 @ 1,000 and 30 @ 2,000 → 1,750; then 40 @ 2,100 → +20%.
        change(early, 1, "특", 10, 1_000),
        change(early2, 1, "특", 30, 2_000),
        change(late, 1, "특", 40, 2_100),
        # 2: +50%, more volume than 3 (+50% too): the tie goes to 2.
        change(early, 2, "특", 50, 1_000),
        change(late, 2, "특", 50, 1_500),
        change(early, 3, "특", 40, 1_000),
        change(late2, 3, "특", 40, 1_500),
        # 4: −25%.
        change(early, 4, "특", 40, 2_000),
        change(late, 4, "특", 40, 1_500),
        # 5: +400% on one bundle a fortnight: under the median.
        change(early, 5, "특", 1, 1_000),
        change(late, 5, "특", 1, 5_000),
        # 6: busy only at the start (2 bundles at the end are under the median): not ranked.
        change(early, 6, "특", 50, 1_000),
        change(late, 6, "특", 2, 9_000),
        # 7: no trade in the last fortnight (the middle does not count).
        change(early, 7, "특", 50, 1_000),
        change(middle, 7, "특", 50, 3_000),
        # 8: unchanged: neither a riser nor a faller.
        change(early, 8, "특", 40, 1_000),
        change(late, 8, "특", 40, 1_000),
        # Another category with its own median: 2 pots at 50,000 → 60,000 qualify there.
        change(early, 9, "특", 2, 50_000, gubn="난"),
        change(late, 9, "특", 2, 60_000, gubn="난"),
        # …but a single pot never does (MIN_QUANTITY), even as its category's median.
        change(early, 10, "특", 1, 50_000, gubn="춘란"),
        change(late, 10, "특", 1, 90_000, gubn="춘란"),
    ]
    frame = pl.DataFrame(rows)
    table = movers(frame, first, last, top=2)

    def ranked(gubn, direction):
        own = table.filter(flower_gubn=gubn, direction=direction).sort("rank")
        return list(zip(own["variety_name"], own["change_pct"].round(2), strict=True))

    assert ranked("절화", "rise") == [("v2", 50.0), ("v3", 50.0)]  # top=2 cuts v1
    assert ranked("절화", "fall") == [("v4", -25.0)]
    assert ranked("난", "rise") == [("v9", 20.0)]
    assert table.filter(flower_gubn="춘란").is_empty()
    full = movers(frame, first, last)
    v1 = full.filter(variety_name="v1").row(0, named=True)
    assert (v1["start_price"], v1["end_price"], v1["change"], v1["rank"]) == (1_750, 2_100, 350, 3)
    assert (v1["start_quantity"], v1["end_quantity"]) == (40, 40)
    # A short period compares its halves; a single day compares nothing.
    short = movers(frame, date(2024, 3, 4), date(2024, 3, 11))
    # 03-04…03-07 against 03-08…03-11: only v1 trades in both, under the median at first.
    assert short.is_empty()
    assert movers(frame, early, early).is_empty()


def test_seasonal_windows_follow_the_period():
    both = seasonal_windows(FIRST, LAST)
    assert [(p.key, p.peak_start, p.peak_end, p.start, p.end, p.partial) for p in both] == [
        # February and two weeks either side, clipped: the period starts on 02-01.
        ("graduation-2024", date(2024, 2, 1), date(2024, 2, 29), FIRST, date(2024, 3, 14), True),
        # The run-up week to May 8, and two weeks either side.
        (
            "parents-day-2024",
            date(2024, 5, 1),
            date(2024, 5, 8),
            date(2024, 4, 17),
            date(2024, 5, 22),
            False,
        ),
    ]
    assert seasonal_windows(date(2024, 6, 1), date(2024, 12, 31)) == []
    assert seasonal_windows(date(2024, 5, 9), date(2025, 1, 31)) == []  # May 8 itself is needed
    (clipped,) = seasonal_windows(date(2024, 5, 1), date(2024, 5, 10))
    assert (clipped.start, clipped.end, clipped.partial) == (
        date(2024, 5, 1),
        date(2024, 5, 10),
        True,
    )
    assert [p.key for p in seasonal_windows(date(2023, 5, 1), date(2024, 2, 10))] == [
        "parents-day-2023",
        "graduation-2024",
    ]


# ---------------------------------------------------------------------------------------------
# The windows risers and fallers compare


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        # Four weeks or more: the first and the last fortnight.
        (
            date(2024, 3, 1),
            date(2024, 3, 31),
            ((date(2024, 3, 1), date(2024, 3, 14)), (date(2024, 3, 18), date(2024, 3, 31))),
        ),
        (
            date(2024, 3, 1),
            date(2024, 3, 28),
            ((date(2024, 3, 1), date(2024, 3, 14)), (date(2024, 3, 15), date(2024, 3, 28))),
        ),
        # Shorter: its halves (an odd middle day in neither).
        (
            date(2024, 3, 1),
            date(2024, 3, 27),
            ((date(2024, 3, 1), date(2024, 3, 13)), (date(2024, 3, 15), date(2024, 3, 27))),
        ),
        (
            date(2024, 3, 1),
            date(2024, 3, 2),
            ((date(2024, 3, 1), date(2024, 3, 1)), (date(2024, 3, 2), date(2024, 3, 2))),
        ),
        # One day: nothing to compare.
        (date(2024, 3, 1), date(2024, 3, 1), None),
    ],
)
def test_mover_windows(first, last, expected):
    assert mover_windows(first, last) == expected


# ---------------------------------------------------------------------------------------------
# The header and the index


def test_categories_come_in_the_market_order_then_any_other_sorted():
    a = pl.DataFrame({"flower_gubn": ["춘란", "절화", "zz", "aa"]})
    b = pl.DataFrame({"flower_gubn": ["난", "절화"]})
    assert categories_in(a, b, pl.DataFrame({"other": [1]})) == ["절화", "난", "춘란", "aa", "zz"]
    assert categories_in(pl.DataFrame(schema={"flower_gubn": pl.String})) == []


def test_aligned_puts_each_value_on_its_date_and_none_elsewhere():
    frame = pl.DataFrame({"auction_date": [date(2024, 3, 4), date(2024, 3, 6)], "v": [1, 2]})
    wanted = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]
    assert aligned(frame, wanted, "v") == [1, None, 2]


def test_rebased_index_is_100_on_each_categorys_first_date_of_the_period():
    frame = index(
        (date(2024, 3, 1), "절화", 80.0),  # before the period: left out
        (date(2024, 3, 4), "절화", 120.0),
        (date(2024, 3, 6), "절화", 150.0),
        (date(2024, 3, 5), "관엽", 50.0),
        (date(2024, 3, 7), "관엽", 40.0),
        (date(2024, 4, 1), "관엽", 10.0),  # after it
    )
    rebased = rebased_index(frame, date(2024, 3, 2), date(2024, 3, 31))
    assert rebased.select("flower_gubn", "auction_date", "value").rows() == [
        ("관엽", date(2024, 3, 5), 100.0),
        ("관엽", date(2024, 3, 7), 80.0),
        ("절화", date(2024, 3, 4), 100.0),
        ("절화", date(2024, 3, 6), 125.0),
    ]


def test_coverage_counts_tell_loaded_dates_without_an_auction_from_dates_not_loaded():
    first, last = date(2024, 3, 1), date(2024, 3, 10)
    coverage = Coverage(first, last, frozenset(days(first, date(2024, 3, 6))))
    table = prices(
        (date(2024, 3, 4), "절화", 10, 100),
        (date(2024, 3, 4), "관엽", 5, 100),
        (date(2024, 3, 5), "절화", 10, 100),
    )
    counts = coverage_counts(coverage, table)
    assert (counts.loaded, counts.auction_dates, counts.without_auction, counts.not_loaded) == (
        6,
        2,
        4,
        4,
    )
    assert coverage_counts(coverage, table.clear()).auction_dates == 0


def test_category_totals_sum_each_category_and_end_on_its_last_index_value():
    table = prices(
        (date(2024, 3, 4), "절화", 10, 1_000),
        (date(2024, 3, 4), "절화", 5, 500),
        (date(2024, 3, 6), "절화", 20, 3_000),
        (date(2024, 3, 5), "관엽", 2, 40_000),
    )
    rebased = rebased_index(
        index((date(2024, 3, 4), "절화", 100.0), (date(2024, 3, 6), "절화", 112.5)),
        date(2024, 3, 1),
        date(2024, 3, 31),
    )
    totals = category_totals(rebased, table, ["절화", "관엽"])
    assert totals == [
        CategoryTotals("절화", 2, 35, 4_500, 112.5),
        CategoryTotals("관엽", 1, 2, 40_000, None),
    ]
    assert totals[0].index_change == pytest.approx(12.5)
    assert totals[1].index_change is None


def test_index_summaries_name_the_first_date_of_the_highest_and_the_lowest_value():
    rebased = rebased_index(
        index(
            (date(2024, 3, 4), "절화", 100.0),
            (date(2024, 3, 6), "절화", 120.0),
            (date(2024, 3, 8), "절화", 90.0),
            (date(2024, 3, 11), "절화", 120.0),  # as high as 03-06: the first is named
            (date(2024, 3, 13), "절화", 112.5),
        ),
        date(2024, 3, 1),
        date(2024, 3, 31),
    )
    (summary,) = index_summaries(rebased, ["절화", "관엽"])  # 관엽 has no index: left out
    assert (summary.category, summary.auction_dates, summary.end) == ("절화", 5, 112.5)
    assert summary.high == IndexPoint(120.0, date(2024, 3, 6))
    assert summary.low == IndexPoint(90.0, date(2024, 3, 8))
    assert (summary.matched_pairs, summary.quantity_share) == (3.0, 0.5)


# ---------------------------------------------------------------------------------------------
# Volume by weekday


def test_weekday_profile_sums_each_weekday_and_shows_sunday_only_when_it_traded():
    monday, tuesday, next_monday = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 11)
    table = prices(
        (monday, "절화", 10, 0),
        (monday, "절화", 5, 0),  # two items the same date: one auction date
        (next_monday, "절화", 6, 0),
        (tuesday, "관엽", 3, 0),
    )
    profile = weekday_profile(table, ["절화", "관엽", "난"])  # 난 did not trade: left out
    assert profile.weekdays == [1, 2, 3, 4, 5, 6]
    cut, foliage = profile.categories
    assert (cut.category, cut.quantity, cut.dates) == (
        "절화",
        [21, 0, 0, 0, 0, 0],
        [2, 0, 0, 0, 0, 0],
    )
    assert cut.per_date == [10, None, None, None, None, None]  # 21 / 2 rounds to even
    assert cut.weekdays[0] == (21, 2, 10)
    assert (foliage.quantity, foliage.dates) == ([0, 3, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0])
    sunday = prices((date(2024, 3, 10), "난", 4, 0))
    assert weekday_profile(sunday, ["난"]).weekdays == [1, 2, 3, 4, 5, 6, 7]


def test_loaded_weekdays_count_each_weekdays_loaded_dates_of_the_period():
    first, last = date(2024, 3, 4), date(2024, 3, 17)  # two weeks from a Monday
    coverage = Coverage(first, last, frozenset(days(first, date(2024, 3, 8))))  # Mon … Fri
    assert loaded_weekdays(coverage, [1, 6, 7]) == [(1, 2), (0, 2), (0, 2)]


# ---------------------------------------------------------------------------------------------
# The seasonal peaks

PEAK_FIRST, PEAK_LAST = date(2024, 4, 1), date(2024, 5, 31)  # Parents' Day: 05-01 … 05-08


def test_daily_quantities_and_their_mean_per_category():
    table = prices(
        (date(2024, 5, 1), "절화", 10, 0),
        (date(2024, 5, 1), "절화", 30, 0),
        (date(2024, 5, 3), "절화", 20, 0),
        (date(2024, 5, 2), "관엽", 7, 0),
    )
    daily = daily_quantities(table).sort("flower_gubn", "auction_date")
    assert daily.rows() == [
        ("관엽", date(2024, 5, 2), 7),
        ("절화", date(2024, 5, 1), 40),
        ("절화", date(2024, 5, 3), 20),
    ]
    assert mean_daily_quantity(daily) == {"절화": 30.0, "관엽": 7.0}


def test_peak_stats_compare_the_peak_with_the_rest_and_read_the_index_around_it():
    (peak,) = seasonal_windows(PEAK_FIRST, PEAK_LAST)
    daily = daily_quantities(
        prices(
            (date(2024, 4, 29), "절화", 100, 0),
            (date(2024, 5, 2), "절화", 300, 0),
            (date(2024, 5, 6), "절화", 500, 0),
            (date(2024, 5, 13), "절화", 100, 0),
            (date(2024, 5, 29), "절화", 200, 0),  # outside the window, still the "rest"
        )
    )
    window_index = rebased_index(
        index(
            (date(2024, 4, 26), "절화", 100.0),
            (date(2024, 4, 29), "절화", 104.0),
            (date(2024, 5, 2), "절화", 130.0),
            (date(2024, 5, 6), "절화", 140.0),
            (date(2024, 5, 13), "절화", 108.0),
            (date(2024, 5, 15), "절화", 101.0),
        ),
        PEAK_FIRST,
        PEAK_LAST,
    )
    everything = Coverage.everything(PEAK_FIRST, PEAK_LAST)
    stats = peak_stats("절화", peak, daily, window_index, everything)
    assert (stats.loaded_days, stats.peak_dates, stats.peak_mean) == (8, 2, 400.0)
    assert stats.rest_mean == pytest.approx(400 / 3)
    assert stats.lift == pytest.approx(200.0)
    assert stats.before == IndexPoint(104.0, date(2024, 4, 29))
    assert stats.during == IndexPoint(140.0, date(2024, 5, 6))
    assert stats.after == IndexPoint(108.0, date(2024, 5, 13))
    # Half the peak loaded: counted and said; none of it: unknown (None), never 0.
    half = Coverage(
        PEAK_FIRST,
        PEAK_LAST,
        frozenset(everything.loaded - set(days(date(2024, 5, 5), date(2024, 5, 8)))),
    )
    assert peak_stats("절화", peak, daily, window_index, half).loaded_days == 4
    none = Coverage(
        PEAK_FIRST,
        PEAK_LAST,
        frozenset(everything.loaded - set(days(peak.peak_start, peak.peak_end))),
    )
    unknown = peak_stats("절화", peak, daily, window_index, none)
    assert (unknown.loaded_days, unknown.peak_dates, unknown.peak_mean, unknown.during) == (
        0,
        None,
        None,
        None,
    )
    assert unknown.lift is None and unknown.rest_mean == stats.rest_mean
    assert unknown.before == stats.before and unknown.after == stats.after


def test_peak_windows_align_each_categorys_series_on_the_windows_auction_dates():
    table = prices(
        (date(2024, 4, 1), "절화", 50, 0),  # before the window (04-17 … 05-22)
        (date(2024, 4, 17), "절화", 100, 0),
        (date(2024, 5, 3), "절화", 150, 0),
        (date(2024, 5, 8), "관엽", 9, 0),
    )
    rebased = rebased_index(
        index((date(2024, 4, 17), "절화", 10.0), (date(2024, 5, 8), "절화", 12.0)),
        PEAK_FIRST,
        PEAK_LAST,
    )
    coverage = Coverage.everything(PEAK_FIRST, PEAK_LAST)
    (window,) = peak_windows(
        rebased, table, ["절화", "관엽", "난"], PEAK_FIRST, PEAK_LAST, coverage
    )
    assert window.peak.key == "parents-day-2024"
    assert window.days == [date(2024, 4, 17), date(2024, 5, 3), date(2024, 5, 8)]
    assert window.peak_positions == [1, 2]
    assert (window.any_loaded, window.not_loaded) == (True, [])
    cut, foliage = window.series  # 난 neither traded nor has an index: left out
    # Volume: 100 = the category's mean auction date over the whole period (100 bundles).
    assert (cut.category, cut.volume, cut.quantity) == (
        "절화",
        [100.0, 150.0, None],
        [100, 150, None],
    )
    assert cut.index == [100.0, None, 120.0]
    assert (foliage.volume, foliage.quantity, foliage.index) == (
        [None, None, 100.0],
        [None, None, 9],
        None,
    )
    assert [s.category for s in window.stats] == ["절화", "관엽"]
    # A window none of whose dates is loaded.
    loaded = Coverage(PEAK_FIRST, PEAK_LAST, frozenset(days(PEAK_FIRST, date(2024, 4, 10))))
    (unknown,) = peak_windows(rebased.clear(), table.clear(), [], PEAK_FIRST, PEAK_LAST, loaded)
    assert not unknown.any_loaded and unknown.days == [] and unknown.series == []
    assert unknown.not_loaded == days(date(2024, 4, 17), date(2024, 5, 22))
