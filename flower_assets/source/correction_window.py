"""The correction window: which auction dates the source may still change, so are re-fetched.

The aT server rebuilds its daily table for saleDate−3 … saleDate on every daily data send (see
docs/at-api.md), so an auction date D can change until the send three days after it. The daily
run on KST day T fetches the latest date T−1 and the `correction_days` dates before it; with the
default 3, D is fetched on the mornings of D+1 … D+4, the last time after the send of D+3, so
its final figures are stored. Outside the window a date's cached answer is replayed at no cost.
The schedule and the raw step both ask this module, so every date the schedule requests as a
correction really goes to the API.
"""

from __future__ import annotations

from datetime import date, timedelta


def latest_auction_date(today: date) -> date:
    """The newest auction date whose results are published by the daily run (yesterday, KST)."""
    return today - timedelta(days=1)


def correction_window(today: date, correction_days: int) -> list[date]:
    """The dates the daily run on `today` (KST) fetches from the API, oldest first."""
    latest = latest_auction_date(today)
    return [latest - timedelta(days=n) for n in range(correction_days, -1, -1)]


def is_refetched(day: date, today: date, correction_days: int) -> bool:
    """True if `day` is in today's window or newer: its cached answer may be out of date."""
    return day >= correction_window(today, correction_days)[0]
