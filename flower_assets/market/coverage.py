"""Which dates of a report's period the warehouse has loaded (pure; no I/O).

The market report reads the market tables, and a date without rows there is either a date
with no auction or a date the warehouse knows nothing of. Only the batch logs tell them apart,
and the report must never show the second as the first (a market closed when the dates were
never loaded). A date of the period is *loaded* when the market tables hold what the auction
records hold of it:

- the records hold an answer of it: `bidding_flowers` loaded one of its stored answers
  (`unchanged.processed` over the process log), and
- if those records hold any row, the market tables were built from them (rows in
  `daily_item_prices`).

A loaded date without records had no auction. Every other date is *not loaded*: never fetched,
its stored answer never loaded into the records (its only stored answer is blocked by a
blocking check, `held_back`, or its load failed), or records without market tables
(`unbuilt`: run flower_market_job). A date with market rows is loaded whatever the logs say:
the report shows it. A blocked re-fetch of a date loaded before (`superseded`) stays loaded:
the records, and so the report, keep its earlier answer, and the report says so.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from flower_assets.transform.unchanged import Stored


class NothingLoaded(ValueError):
    """No date of the period is loaded: a report of it could only say what it does not know."""


def date_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive dates as (first, last) ranges, in order; repeats count once."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def runs_text(days: Iterable[date]) -> str:
    """`2024-04-01 … 2024-04-30, 2024-05-02`, or `none`."""
    runs = date_runs(days)
    if not runs:
        return "none"
    return ", ".join(f"{a}" if a == b else f"{a} … {b}" for a, b in runs)


def _between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class Coverage:
    """The dates first..last the report's tables stand for (`loaded`), and why others do not."""

    first: date
    last: date
    loaded: frozenset[date]
    held_back: frozenset[date] = frozenset()  # stored, blocked, never loaded
    unbuilt: frozenset[date] = frozenset()  # records without market tables
    superseded: frozenset[date] = frozenset()  # loaded; a newer answer is blocked

    @classmethod
    def everything(cls, first: date, last: date) -> Coverage:
        """Every date loaded: for market tables given without their batch logs."""
        return cls(first, last, frozenset(_between(first, last)))

    @property
    def days(self) -> list[date]:
        return _between(self.first, self.last)

    @property
    def not_loaded(self) -> list[date]:
        return [day for day in self.days if day not in self.loaded]

    @property
    def complete(self) -> bool:
        return not self.not_loaded

    @property
    def span(self) -> tuple[date, date] | None:
        """The first and the last loaded date, or None."""
        return (min(self.loaded), max(self.loaded)) if self.loaded else None

    def loaded_in(self, first: date, last: date) -> list[date]:
        return [day for day in _between(first, last) if day in self.loaded]

    def not_loaded_in(self, first: date, last: date) -> list[date]:
        return [
            day
            for day in _between(max(first, self.first), min(last, self.last))
            if day not in self.loaded
        ]

    @property
    def text(self) -> str:
        """`loaded: … ; not loaded: …`, runs of dates as ranges."""
        return f"loaded: {runs_text(self.loaded)}; not loaded: {runs_text(self.not_loaded)}"


def report_coverage(
    first: date,
    last: date,
    stored: Mapping[date, Stored],
    processed: Mapping[date, str],
    record_dates: Collection[date],
    market_dates: Collection[date],
) -> Coverage:
    """Which dates of first..last are loaded (the rule: module docstring).

    `stored`: `unchanged.stored_raw` of the upload log; `processed`: `unchanged.processed` of
    the process log for bidding_flowers; `record_dates`: dates with auction records (only
    those without market rows matter); `market_dates`: dates with rows in daily_item_prices.
    """
    days = _between(first, last)
    unbuilt = {day for day in days if day in record_dates and day not in market_dates}
    loaded = {
        day for day in days if day in market_dates or (day in processed and day not in unbuilt)
    }
    blocked = {day for day in days if day in stored and stored[day].blocked_by}
    return Coverage(
        first,
        last,
        frozenset(loaded),
        held_back=frozenset(blocked - loaded),
        unbuilt=frozenset(unbuilt),
        superseded=frozenset(blocked & loaded),
    )
