"""Errors the platform raises, each naming the auction date, category and cause."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")


class FlowerApiError(Exception):
    """Base class of every error raised while talking to the aT API."""

    retryable: bool = False

    def __init__(self, auction_date: date, category_label: str, cause: str) -> None:
        self.auction_date = auction_date
        self.category_label = category_label
        self.cause = cause
        super().__init__(
            f"aT API, auction date {auction_date.isoformat()}, {category_label}: {cause}"
        )


class ApiRejectedRequest(FlowerApiError):
    """The server answered with a non-zero resultCd that retrying cannot fix (1, 2, 3, 5)."""

    def __init__(
        self, auction_date: date, category_label: str, result_code: str, meaning: str, message: str
    ) -> None:
        self.result_code = result_code
        self.server_message = message
        super().__init__(
            auction_date, category_label, f"resultCd {result_code}: {meaning} (server: {message!r})"
        )


class QuotaExceeded(FlowerApiError):
    """resultCd 4: the key's daily call quota is used up; it resets at midnight KST."""

    def __init__(
        self, auction_date: date, category_label: str, message: str, now: datetime
    ) -> None:
        self.server_message = message
        self.resets_at = next_quota_reset(now)
        super().__init__(
            auction_date,
            category_label,
            f"resultCd 4: today's call quota for this service key is used up (server: {message!r});"
            f" it resets at {self.resets_at.isoformat()}",
        )


class ApiHttpError(FlowerApiError):
    """An HTTP 4xx other than 429: the request itself is wrong; retrying will not help."""


class ApiUnavailable(FlowerApiError):
    """Every attempt failed with a transient fault (network, 5xx, 429, unreadable body)."""

    retryable = True


class MalformedResponse(Exception):
    """A body that is not the API's JSON envelope: empty, HTML, XML, truncated, or mis-shaped."""


def next_quota_reset(now: datetime) -> datetime:
    """The next midnight in Asia/Seoul after `now`."""
    local = now.astimezone(SEOUL)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=SEOUL)
