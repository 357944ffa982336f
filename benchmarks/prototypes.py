"""Measured what-ifs: monkeypatches of flower_assets, applied inside the backfill process only.

Each prototype stands for one change the package could make, so that its effect can be
measured before anyone writes it: `backfill.py --prototype NAME [--prototype NAME …]`.
They wrap package internals that may move; they are for diagnosis, never for production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg


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
    from flower_assets.defs.checks import CheckRecorder

    results = CheckRecorder.results

    def patched(self: CheckRecorder) -> list[dg.AssetCheckResult]:
        self.context = _PassesUnrecorded(self.context)
        return results(self)

    CheckRecorder.results = patched


def one_page_per_day() -> None:
    """Ask for a page large enough for any day, so a day costs one call per category.

    Stands for: raise `AtApiResource.page_size` (countPerPage) from 5,000 to e.g. 1,000,000.
    The API applies no cap and documents that walking several pages repeats and skips rows.
    """
    from flower_assets.defs.resources import AtApiResource
    from flower_assets.source.client import AtFlowerClient

    client = AtApiResource.client

    def patched(self: AtApiResource) -> AtFlowerClient:
        made = client(self)
        made.page_size = 1_000_000
        return made

    AtApiResource.client = patched


PROTOTYPES: dict[str, Callable[[], None]] = {
    "failed_checks_only": failed_checks_only,
    "one_page_per_day": one_page_per_day,
}
