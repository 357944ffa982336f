"""Pure integrity checks: they fire on constructed bad data and stay quiet on normal data."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, timedelta

import polars as pl

from flower_assets.quality import catalog, integrity
from flower_assets.source.categories import Category
from flower_assets.source.envelope import ApiItem
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.raw import raw_rows
from flower_assets_tests.conftest import item

DAY = date(2024, 5, 10)  # a Friday


def raw(*rows: dict) -> pl.DataFrame:
    items = [ApiItem(raw=json.dumps(r, ensure_ascii=False).encode(), fields=r) for r in rows]
    return raw_rows(items, DAY, Category.CUT_FLOWERS, datetime(2024, 5, 10, tzinfo=UTC))


def test_schema_drift_names_the_renamed_field():
    renamed = {k: v for k, v in item().items() if k != "lvNm"} | {"lv": "특1"}
    outcome = integrity.schema_conforms(raw(renamed, renamed))
    assert not outcome.passed
    assert "field lvNm missing in 2 of 2 items" in outcome.summary
    assert "unexpected field lv in 2 items (renamed?)" in outcome.summary


def test_schema_drift_counts_odd_items_among_usual_ones():
    extra = item(good="b") | {"origin": "콜롬비아"}
    missing = {k: v for k, v in item(good="c").items() if k != "totAmt"}
    null_valued = item(good="d") | {"maxAmt": None}  # present, so not missing
    outcome = integrity.schema_conforms(raw(item(), extra, missing, null_valued, item(good="e")))
    assert not outcome.passed
    assert outcome.metadata["problems"] == [
        "field totAmt missing in 1 of 5 items",
        "unexpected field origin in 1 items (renamed?)",
    ]


def test_schema_drift_names_an_unknown_category_and_passes_normal_items():
    assert "unknown category '다육'" in integrity.schema_conforms(raw(item(gubn="다육"))).summary
    assert integrity.schema_conforms(raw(item(), item(good="b"))).passed
    assert integrity.schema_conforms(raw()).passed


def test_rejected_share_against_the_threshold():
    frame = raw(*[item(good=f"v{i}") for i in range(99)], item(good="bad", tot_qty="x"))
    _, rejected = split_loadable(frame)
    assert integrity.rejected_share_within_threshold(
        frame.height, rejected, 0.01
    ).passed  # exactly 1 %
    failing = integrity.rejected_share_within_threshold(frame.height, rejected, 0.005)
    assert not failing.passed and "non_numeric_amount" in failing.summary
    assert failing.metadata["rejected"] == 1


def duplicate_keys(frame: pl.DataFrame) -> integrity.Outcome:
    return integrity.no_duplicate_keys(frame, split_loadable(frame)[1])


def test_duplicate_keys_and_dates():
    assert not duplicate_keys(raw(item(), item(avg_amt="1"))).passed
    assert duplicate_keys(raw(item(), item(grade="상1"))).passed
    wrong = integrity.dates_match_partition(raw(item(day="2024-05-09"), item(good="x")))
    assert not wrong.passed and "'2024-05-09'" in wrong.summary
    assert integrity.dates_match_partition(raw(item())).passed


def records(**columns) -> pl.DataFrame:
    base = {
        "auction_date": [DAY],
        "flower_id": [1],
        "grade": ["특1"],
        "quantity": [3],
        "max_price": [120],
        "min_price": [80],
        "avg_price": [100],
        "total_price": [300],
    }
    return pl.DataFrame(base | {k: [v] for k, v in columns.items()})


def test_prices_ordered_and_totals_consistent():
    assert integrity.prices_ordered(records()).passed
    assert not integrity.prices_ordered(records(avg_price=130)).passed
    assert integrity.totals_consistent(records(total_price=301)).passed  # rounding
    assert not integrity.totals_consistent(records(total_price=400)).passed


def test_reconciliation_names_the_category_that_lost_rows():
    assert integrity.reconciles_with_raw({"절화": 10}, {"절화": 8}, {"절화": 2}).passed
    lost = integrity.reconciles_with_raw({"절화": 10, "난": 3}, {"절화": 8}, {"절화": 2})
    assert not lost.passed and "난 (raw 3, loaded 0, rejected 0)" in lost.summary


def price_history(prices: list[int], flower_id: int = 1) -> pl.DataFrame:
    days = [DAY - timedelta(days=2 * (n + 1)) for n in range(len(prices))]
    return pl.DataFrame(
        {
            "auction_date": days,
            "flower_id": [flower_id] * len(prices),
            "grade": ["특1"] * len(prices),
            "avg_price": prices,
        }
    )


NORMAL = [10_000, 10_400, 9_800, 10_100, 9_900, 10_300, 9_700, 10_200, 10_050, 9_950, 10_150, 9_850]


def test_price_anomaly_fires_on_a_spike_and_stays_quiet_on_normal_prices():
    spike = integrity.price_anomalies(records(avg_price=41_000), price_history(NORMAL), DAY)
    assert not spike.passed and spike.metadata["anomalies"] == 1
    assert spike.sample["robust_z"][0] > 5 and spike.sample["ratio"][0] == 4.09
    assert integrity.price_anomalies(records(avg_price=10_600), price_history(NORMAL), DAY).passed
    # A crash is as suspicious as a spike.
    assert not integrity.price_anomalies(
        records(avg_price=2_000), price_history(NORMAL), DAY
    ).passed


def test_price_anomaly_needs_enough_history_and_ignores_later_dates():
    assert integrity.price_anomalies(
        records(avg_price=41_000), price_history(NORMAL[:5]), DAY
    ).passed
    future = price_history(NORMAL).with_columns(pl.col("auction_date") + timedelta(days=60))
    assert integrity.price_anomalies(records(avg_price=41_000), future, DAY).passed


def calendar(category: str, weeks_traded: list[int], on: date = DAY) -> pl.DataFrame:
    days = [on - timedelta(weeks=w) for w in weeks_traded]
    return pl.DataFrame(
        {"auction_date": days, "flower_gubn": [category] * len(days), "rows": [500] * len(days)}
    )


def test_expected_auction_day_flags_a_silent_usual_trading_day():
    silent = integrity.expected_auction_day(DAY, {"절화": 0}, calendar("절화", list(range(1, 9))))
    assert not silent.passed
    assert (
        "절화 has no rows on Friday 2024-05-10 but traded on 8 of the last 8 Fridays"
        in silent.summary
    )


def test_expected_auction_day_is_quiet_for_rare_categories_and_days_with_rows():
    assert integrity.expected_auction_day(DAY, {"춘란": 0}, calendar("춘란", [4, 8])).passed
    assert integrity.expected_auction_day(
        DAY, {"절화": 700}, calendar("절화", list(range(1, 9)))
    ).passed
    assert integrity.expected_auction_day(DAY, {}, calendar("절화", [])).passed


def test_expected_auction_day_passes_on_a_public_holiday_naming_it():
    """The market is closed on Korean public holidays, lunar and substitute ones included."""
    for holiday, weekday, name in (
        (date(2024, 5, 15), "Wednesday", "부처님오신날"),  # Buddha's Birthday, lunar
        (date(2024, 5, 6), "Monday", "어린이날 대체 휴일"),  # substitute for Children's Day
        (date(2024, 4, 10), "Wednesday", "국회의원 선거일"),  # election day
        (date(2024, 8, 15), "Thursday", "광복절"),
    ):
        usual = calendar("절화", list(range(1, 9)), on=holiday)
        outcome = integrity.expected_auction_day(holiday, {"절화": 0}, usual)
        assert outcome.passed, outcome.summary
        assert outcome.summary == f"no auction on {holiday}: public holiday ({name})"
        assert outcome.metadata == {"weekday": weekday, "public_holiday": name}
    # The same silence a week later, an ordinary Wednesday, is still flagged.
    ordinary = date(2024, 5, 22)
    usual = calendar("절화", list(range(1, 9)), on=ordinary)
    outcome = integrity.expected_auction_day(ordinary, {"절화": 0}, usual)
    assert not outcome.passed
    assert "절화 has no rows on Wednesday 2024-05-22 but traded on 8 of the last 8" in (
        outcome.summary
    )
    # Rows on a holiday are no fault either; the summary says so.
    traded = integrity.expected_auction_day(date(2024, 6, 6), {"관엽": 40}, usual)
    assert traded.passed and traded.summary == (
        "2024-06-06 is a public holiday (현충일), yet 관엽 traded"
    )


def master(names: list[str], first: list[date], last: list[date]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": list(range(1, len(names) + 1)),
            "flower_gubn": ["절화"] * len(names),
            "name": names,
            "first_seen_date": first,
            "last_seen_date": last,
        }
    )


def test_lookalike_names_find_unicode_and_invisible_twins_of_the_dates_items():
    items = master(
        ["장미", unicodedata.normalize("NFD", "장미"), "국화", "국화\u200b", "백합"],
        [DAY] * 5,
        [DAY] * 5,
    )
    twins = integrity.lookalike_twins(items, "flower_gubn")
    outcome = integrity.no_lookalike_names(twins, "flower_gubn", pl.Series([1, 3]))
    assert not outcome.passed and outcome.metadata["lookalike_rows"] == 4
    assert set(outcome.sample["id"]) == {1, 2, 3, 4}
    # Twins that did not trade on the date are that date's concern, not this one's.
    assert integrity.no_lookalike_names(twins, "flower_gubn", pl.Series([5])).passed
    # Names that only differ by a real character are two things.
    distinct = master(["장미", "장미꽃"], [DAY] * 2, [DAY] * 2)
    assert integrity.no_lookalike_names(
        integrity.lookalike_twins(distinct, "flower_gubn"), "flower_gubn", pl.Series([1, 2])
    ).passed


def test_seen_dates_must_match_the_dates_records():
    earlier = DAY - timedelta(days=3)
    items = master(["장미", "국화"], [earlier, earlier], [DAY, earlier])
    assert integrity.seen_dates_match_records(items, pl.Series([1]), DAY).passed
    # A correction removed the last record of 장미 on DAY: its last_seen_date is stale.
    stale = integrity.seen_dates_match_records(items, pl.Series([], dtype=pl.Int64), DAY)
    assert not stale.passed and stale.metadata["stale"] == 1
    # 국화 traded on DAY although its last_seen_date is earlier.
    outside = integrity.seen_dates_match_records(items, pl.Series([1, 2]), DAY)
    assert not outside.passed and outside.metadata["outside_range"] == 1


def test_price_rules_tolerate_the_published_share_of_inversions_and_catch_a_broken_feed():
    day = pl.concat([records()] * 999 + [records(min_price=110)])  # 0.1 %: a normal busy day
    assert integrity.prices_ordered(day).passed
    assert "1 of 1000 records" in integrity.prices_ordered(day).summary
    broken = pl.concat([records()] * 90 + [records(min_price=110)] * 10)  # 10 %
    assert not integrity.prices_ordered(broken).passed


def test_duplicate_keys_compare_names_trimmed_like_quarantine_does():
    assert not duplicate_keys(raw(item(good="레드"), item(good="레드 ", avg_amt="1"))).passed


def test_duplicate_keys_count_the_rows_quarantine_really_keeps_aside():
    # Two identical rows: one loads, only the copy is kept aside.
    copies = duplicate_keys(raw(item(), item()))
    assert not copies.passed
    assert (copies.metadata["duplicate_rows"], copies.metadata["quarantined_rows"]) == (2, 1)
    assert copies.summary.startswith(
        "2 rows share a key with another row: 1 kept in quarantine, 1 loaded"
    ), copies.summary
    # One key claimed with different numbers: neither is guessed, both are kept aside.
    clash = duplicate_keys(raw(item(), item(avg_amt="9000"), item(good="다른")))
    assert (clash.metadata["duplicate_rows"], clash.metadata["quarantined_rows"]) == (2, 2)
    assert clash.summary == "2 rows share a key with another row: all 2 kept in quarantine"
    # Three copies of one row and a conflicting fourth: all four kept aside.
    mixed = duplicate_keys(raw(item(), item(), item(), item(avg_amt="9000")))
    assert (mixed.metadata["duplicate_rows"], mixed.metadata["quarantined_rows"]) == (4, 4)
    # Three identical copies: two kept aside.
    three = duplicate_keys(raw(item(), item(), item()))
    assert (three.metadata["duplicate_rows"], three.metadata["quarantined_rows"]) == (3, 2)
    assert "3 rows share a key with another row: 2 kept in quarantine, 1 loaded" in three.summary


def test_outcomes_kept_as_json_read_back_equal():
    outcomes = {
        catalog.NO_DUPLICATE_KEYS: integrity.Outcome(
            False,
            "2 rows repeat a key",
            {"duplicates": 2, "by_category": {"절화": 2}},
            pl.DataFrame({"goodName": ["중복", "중복"], "avg_amt": [10000, 10001]}),
        ),
        catalog.DATES_MATCH_PARTITION: integrity.Outcome(
            True, "every saleDate is the date asked for"
        ),
    }
    text = catalog.outcomes_json(outcomes)
    # Stored keyed by check name: the upload log stays readable whatever the code calls them.
    assert set(json.loads(text)) == {"no_duplicate_keys", "dates_match_partition"}
    again = catalog.outcomes_from_json(text, catalog.RAW_CHECKS)
    assert again.keys() == outcomes.keys()
    for check, outcome in outcomes.items():
        read = again[check]
        assert (read.passed, read.summary, read.metadata) == (
            outcome.passed,
            outcome.summary,
            outcome.metadata,
        )
        assert (read.sample is None) == (outcome.sample is None)
        if outcome.sample is not None:
            assert read.sample.equals(outcome.sample)
