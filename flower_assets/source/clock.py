"""The platform's "now": the one place the quota day, the cache's correction window and the
history sensor read the time from.

The quota resets at midnight in Seoul, so "today" is the KST date. Tests drive the day forward
by replacing `now` in this module (every caller looks it up here at each call).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flower_assets.source.errors import SEOUL


def now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def kst_today(at: datetime | None = None) -> date:
    """The KST date of `at` (default: now): the quota day and the correction window's today."""
    return (at or now()).astimezone(SEOUL).date()
