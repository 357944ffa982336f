"""What follows auction runs: the one planner that the market sensor and the CLI both call."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from flower_assets.defs.partitions import date_chunks
from flower_assets.steps.market import MarketHistory
from flower_assets.warehouse.database import Warehouse


@dataclass(frozen=True)
class MarketPlan:
    """The flower_market_job runs that put every market date on its current auction records.

    Each successful market run is followed by the market report (the sensor
    report_after_market; `flower-assets materialize` writes it once after its market runs).
    """

    runs: list[tuple[date, date]]  # first and last auction date of each run
    # The histories the runs build on: a sensor requests each state once, so a failed build is
    # not retried in a loop.
    state: str


def plan_market(wh: Warehouse, index_base: date | None, asked: list[date], size: int) -> MarketPlan:
    """The dates asked for and every stale one (a first load of an earlier date, a correction,
    a removal, by any run), first to last, in runs of at most `size` dates."""
    history = MarketHistory.read(wh, index_base)
    stale = history.stale()
    wanted = [*asked, *stale]
    if not wanted:
        return MarketPlan([], "")
    state = hashlib.sha256(
        "".join(f"{day}{history.current.get(day)}" for day in stale).encode()
    ).hexdigest()[:16]
    return MarketPlan(date_chunks(min(wanted), max(wanted), size), state)
