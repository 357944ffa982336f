"""How far the history is loaded, and which dates today's quota still lets the history load.

History is every auction date from FLOWER_START_DATE up to the day before today's correction
window: the daily schedule fetches the window itself each morning, and a date that leaves the
window was fetched by the schedule while in it. A date counts as loaded once the raw response
cache holds its answer for all four categories: that is what makes it cost no call again, and
it holds days without an auction too (their empty answers cost the same calls).

The history may spend today only what the quota leaves after the reserve for the daily
schedule, less every call already counted today (by any run, the schedule's included), so it
never takes the last calls of a day from the schedule's corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flower_assets.source.cache import BackfillEstimate, key_fingerprint
from flower_assets.source.categories import Category
from flower_assets.source.clock import kst_today
from flower_assets.source.correction_window import correction_window
from flower_assets.source.quota import ApiQuota
from flower_assets.source.responses import ResponseCache
from flower_assets.warehouse.database import Warehouse


@dataclass(frozen=True)
class HistoryPlan:
    today: date
    first: date
    last: date
    total: int
    loaded: int
    # Calls the missing dates still need (4 per date, less categories already cached).
    calls_needed: int
    daily_quota: int
    reserve: int
    spent_today: int
    # The oldest missing dates whose calls fit in today's budget, in ranges of consecutive days.
    runs: list[tuple[date, date]]

    @property
    def complete(self) -> bool:
        return self.loaded == self.total

    @property
    def budget_left(self) -> int:
        """Calls the history may still spend today (never below 0)."""
        return max(self.daily_quota - self.reserve - self.spent_today, 0)

    @property
    def quota_days_left(self) -> int:
        """KST days until complete: today's budget first, then quota − reserve each day."""
        if self.calls_needed == 0:
            return 0
        per_day = self.daily_quota - self.reserve
        if per_day <= 0:
            return 0  # never: the reserve takes the whole quota (the progress text says so)
        return BackfillEstimate(0, self.calls_needed, 0, self.budget_left, per_day).quota_days

    @property
    def dates_requested(self) -> int:
        return sum((last - first).days + 1 for first, last in self.runs)

    def progress(self) -> str:
        """One line for the sensor's tick: how far, how long, and today's spending."""
        days = self.quota_days_left
        when = "complete" if days == 0 else f"{days} quota day{'s' if days > 1 else ''} left"
        if self.daily_quota <= self.reserve and not self.complete:
            when = "no quota day can finish it: the reserve takes the whole daily quota"
        return (
            f"history {self.loaded:,} of {self.total:,} dates loaded ({self.first} to "
            f"{self.last}); {when}; today (KST {self.today}) {self.spent_today:,} of "
            f"{self.daily_quota:,} calls spent, {self.reserve:,} kept for the daily schedule, "
            f"{self.budget_left:,} left for history"
        )


def plan_history(
    warehouse: Warehouse,
    service_key: str,
    first: date,
    daily_quota: int,
    reserve: int,
    correction_days: int,
    max_dates_per_run: int,
) -> HistoryPlan:
    """The history's state today (the clock's KST day) and the runs today's budget allows."""
    today = kst_today()
    last = correction_window(today, correction_days)[0] - timedelta(days=1)
    days = [first + timedelta(days=n) for n in range(max((last - first).days + 1, 0))]
    cached = ResponseCache(warehouse).dates(first, last) if days else set()
    spent = ApiQuota(warehouse).calls_on(key_fingerprint(service_key), today)
    cost = {
        day: sum((day, category.korean_name) not in cached for category in Category) for day in days
    }
    missing = [day for day in days if cost[day] > 0]
    budget = max(daily_quota - reserve - spent, 0)
    chosen: list[date] = []
    for day in missing:  # oldest first, while the next date's calls still fit
        if cost[day] > budget:
            break
        budget -= cost[day]
        chosen.append(day)
    return HistoryPlan(
        today=today,
        first=first,
        last=last,
        total=len(days),
        loaded=len(days) - len(missing),
        calls_needed=sum(cost[day] for day in missing),
        daily_quota=daily_quota,
        reserve=reserve,
        spent_today=spent,
        runs=_ranges(chosen, max_dates_per_run),
    )


def _ranges(days: list[date], size: int) -> list[tuple[date, date]]:
    """Sorted dates as ranges of consecutive days, each at most `size` dates long."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1) and (day - runs[-1][0]).days < size:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs
