"""Which dates of a report's period are loaded (pure): a date not loaded is unknown, not closed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flower_assets.market.coverage import Coverage, date_runs, report_coverage, runs_text
from flower_assets.transform.unchanged import Stored

D = date(2024, 5, 1)


def day(n: int) -> date:
    return D + timedelta(days=n - 1)  # day(1) is 2024-05-01


def test_date_runs_compress_consecutive_dates_into_ranges():
    assert date_runs([]) == []
    assert date_runs([day(3)]) == [(day(3), day(3))]
    # Unsorted, repeated, across a month's end.
    days = [day(5), day(1), day(2), day(3), day(3), date(2024, 4, 30), day(7), day(8)]
    assert date_runs(days) == [(date(2024, 4, 30), day(3)), (day(5), day(5)), (day(7), day(8))]
    assert runs_text(days) == "2024-04-30 … 2024-05-03, 2024-05-05, 2024-05-07 … 2024-05-08"
    assert runs_text([]) == "none"


LOADED, BLOCKED = Stored("h1", None), Stored("h2", "schema_conforms: field lvNm missing")


@pytest.mark.parametrize(
    ("stored", "processed", "records", "market", "loaded", "note"),
    [
        # Never fetched: no upload log row.
        ({}, {}, set(), set(), False, None),
        # Loaded, with an auction: records and market rows.
        ({D: LOADED}, {D: "h1"}, {D}, {D}, True, None),
        # Loaded, no auction (an empty answer, a Sunday): no records, nothing to build.
        ({D: LOADED}, {D: "h1"}, set(), set(), True, None),
        # Stored but never loaded into the records (its bidding_flowers step failed).
        ({D: LOADED}, {}, set(), set(), False, None),
        # Stored, but a blocking check kept it out of the records, which hold nothing of it.
        ({D: BLOCKED}, {}, set(), set(), False, "held_back"),
        # A re-fetch blocked: the records keep the answer loaded before, and the report shows it.
        ({D: BLOCKED}, {D: "h0"}, {D}, {D}, True, "superseded"),
        # Records without market tables (flower_market_job not run): not in the report's tables.
        ({D: LOADED}, {D: "h1"}, {D}, set(), False, "unbuilt"),
        # Market rows are there: whatever the logs say, the report shows the date.
        ({}, {}, {D}, {D}, True, None),
    ],
    ids=[
        "never-fetched",
        "auction",
        "no-auction",
        "records-step-failed",
        "blocked",
        "blocked-refetch-of-a-loaded-date",
        "market-not-built",
        "market-rows-without-logs",
    ],
)
def test_a_date_is_loaded_when_the_market_tables_hold_what_its_records_hold(
    stored, processed, records, market, loaded, note
):
    coverage = report_coverage(D, D, stored, processed, records, market)
    assert (D in coverage.loaded) is loaded
    assert coverage.not_loaded == ([] if loaded else [D])
    notes = {"held_back": coverage.held_back, "superseded": coverage.superseded}
    notes["unbuilt"] = coverage.unbuilt
    assert {name for name, days in notes.items() if D in days} == ({note} if note else set())


def test_a_partly_loaded_period_says_which_part():
    stored = {day(n): LOADED for n in range(3, 7)} | {day(7): BLOCKED}
    processed = {day(n): "h1" for n in range(3, 7)}
    coverage = report_coverage(day(1), day(10), stored, processed, {day(3), day(4)}, {day(3)})
    # day 4 has records but no market rows; days 5 and 6 had no auction.
    assert sorted(coverage.loaded) == [day(3), day(5), day(6)]
    assert coverage.not_loaded == [day(1), day(2), day(4), *(day(n) for n in range(7, 11))]
    assert not coverage.complete and coverage.span == (day(3), day(6))
    assert coverage.text == (
        "loaded: 2024-05-03, 2024-05-05 … 2024-05-06; "
        "not loaded: 2024-05-01 … 2024-05-02, 2024-05-04, 2024-05-07 … 2024-05-10"
    )
    assert coverage.loaded_in(day(4), day(8)) == [day(5), day(6)]
    assert coverage.not_loaded_in(day(4), day(8)) == [day(4), day(7), day(8)]
    assert coverage.held_back == frozenset({day(7)}) and coverage.unbuilt == frozenset({day(4)})


def test_a_period_with_nothing_loaded_has_no_span_and_everything_is_complete():
    nothing = report_coverage(day(1), day(31), {}, {}, set(), set())
    assert nothing.span is None and not nothing.loaded and len(nothing.not_loaded) == 31
    everything = Coverage.everything(day(1), day(31))
    assert everything.complete and everything.span == (day(1), day(31))
    assert everything.text == "loaded: 2024-05-01 … 2024-05-31; not loaded: none"
