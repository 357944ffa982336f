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
    """The key's daily call quota is used up; it resets at midnight KST.

    Raised on the server's resultCd 4, or by `counted` before a call is made when the
    warehouse's count for the key and KST day has reached FLOWER_API_DAILY_QUOTA.
    """

    def __init__(
        self,
        auction_date: date,
        category_label: str,
        message: str,
        now: datetime,
        *,
        cause: str | None = None,
    ) -> None:
        self.server_message = message
        self.resets_at = next_quota_reset(now)
        cause = cause or (
            f"resultCd 4: today's call quota for this service key is used up (server: {message!r})"
        )
        super().__init__(
            auction_date, category_label, f"{cause}; it resets at {self.resets_at.isoformat()}"
        )

    @classmethod
    def counted(
        cls, auction_date: date, category_label: str, daily_quota: int, now: datetime
    ) -> QuotaExceeded:
        """Our own guard refused the call: no request was sent, the server said nothing."""
        return cls(
            auction_date,
            category_label,
            "",
            now,
            cause=(
                f"the warehouse counted all {daily_quota} calls of today's quota "
                "for this service key (FLOWER_API_DAILY_QUOTA, counted per KST day across all "
                "runs), so the call was not made"
            ),
        )


class IncompleteAnswer(FlowerApiError):
    """A multi-page answer that could not be proven complete; nothing of it is written."""

    retryable = True


class ApiHttpError(FlowerApiError):
    """An HTTP 4xx other than 429: the request itself is wrong; retrying will not help."""


class ApiUnavailable(FlowerApiError):
    """Every attempt failed with a transient fault (network, 5xx, 429, unreadable body)."""

    retryable = True


class MalformedResponse(Exception):
    """A body that is not the API's JSON envelope: empty, HTML, XML, truncated, or mis-shaped."""


def refuses_the_key(error: FlowerApiError) -> bool:
    """The service refuses the key itself, whatever the date: asking for others is futile."""
    return isinstance(error, QuotaExceeded) or (
        isinstance(error, ApiRejectedRequest) and error.result_code in KEY_RESULT_CODES
    )


# resultCd of a wrong, expired or unapproved service key.
KEY_RESULT_CODES = ("1", "2", "3")


class KeyRefused(FlowerApiError):
    """A date not asked for: the service refused the key earlier in the same run."""

    def __init__(self, auction_date: date, refusal: FlowerApiError) -> None:
        self.refusal = refusal
        super().__init__(
            auction_date,
            "every category",
            f"not asked, the service refused the key on auction date {refusal.auction_date}: "
            f"{refusal.cause}",
        )


def next_quota_reset(now: datetime) -> datetime:
    """The next midnight in Asia/Seoul after `now`."""
    local = now.astimezone(SEOUL)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=SEOUL)
