"""Measured what-ifs: monkeypatches of flower_assets, applied inside the backfill process only.

Each prototype stands for one change the package could make, so that its effect can be
measured before anyone writes it: `backfill.py --prototype NAME [--prototype NAME …]`.
They wrap package internals that may move; they are for diagnosis, never for production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg
import polars as pl


class _PassesUnrecorded:
    """An asset context whose log_event drops passing per-date check evaluations."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def log_event(self, event: Any) -> None:
        if isinstance(event, dg.AssetCheckEvaluation) and event.passed:
            return
        self._context.log_event(event)


def failed_checks_only() -> None:
    """Record a per-date check evaluation only when it fails.

    Stands for: in `CheckRecorder.results`, log the per-date `AssetCheckEvaluation` of a
    multi-date run only for failing dates; the one aggregate `AssetCheckResult` per check still
    says how many dates passed. Each recorded event costs milliseconds on the instance.
    """
    from flower_assets.checks import CheckRecorder

    results = CheckRecorder.results

    def patched(self: CheckRecorder) -> list[dg.AssetCheckResult]:
        self.context = _PassesUnrecorded(self.context)
        return results(self)

    CheckRecorder.results = patched


def split_once() -> None:
    """Compute each date's loadable / rejected split once per run instead of once per asset.

    Stands for: decide quarantine once, in public_bidding_flowers, and let the downstream assets
    read that decision (e.g. raw rows without a rejected_bidding_flowers entry) instead of
    re-running `split_loadable` on the raw partition in every asset.
    """
    from flower_assets import assets

    split = assets.split_loadable
    cache: dict[tuple[int, int], tuple[pl.DataFrame, pl.DataFrame]] = {}

    def cached(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        # Keyed on content: the same rows read back from the warehouse hit the same entry.
        key = (raw.height, int(raw.drop("fetched_at").hash_rows().sum()))
        if key not in cache:
            cache[key] = split(raw)
        return cache[key]

    assets.split_loadable = cached


def trim_price_history() -> None:
    """Give price_anomalies only the history window, not everything since the run began.

    Stands for: in bidding_flowers, drop history older than `integrity.history_window_start(day)`
    as the run moves on (or filter inside `price_anomalies`). Today the history frame grows by
    every date of the run and is sorted again for each date, so the check's cost grows with the
    run's length, and a date's outcome depends on where its run started.
    """
    from flower_assets import integrity

    anomalies = integrity.price_anomalies

    def trimmed(today: pl.DataFrame, history: pl.DataFrame, day: date) -> integrity.Outcome:
        start = integrity.history_window_start(day)
        return anomalies(today, history.filter(pl.col("auction_date") >= start), day)

    integrity.price_anomalies = trimmed


def one_page_per_day() -> None:
    """Ask for a page large enough for any day, so a day costs one call per category.

    Stands for: raise `AtApiResource.page_size` (countPerPage) from 5,000 to e.g. 1,000,000.
    The API applies no cap and documents that walking several pages repeats and skips rows.
    """
    from flower_assets.client import AtFlowerClient
    from flower_assets.resources import AtApiResource

    client = AtApiResource.client

    def patched(self: AtApiResource) -> AtFlowerClient:
        made = client(self)
        made.page_size = 1_000_000
        return made

    AtApiResource.client = patched


PROTOTYPES: dict[str, Callable[[], None]] = {
    "failed_checks_only": failed_checks_only,
    "one_page_per_day": one_page_per_day,
    "split_once": split_once,
    "trim_price_history": trim_price_history,
}
