"""httpx client for the aT flower-auction API (kind f001), with retries, paging and redaction."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import quote

import httpx

from flower_assets.source.categories import Category
from flower_assets.source.envelope import ApiItem, parse_page
from flower_assets.source.errors import (
    ApiHttpError,
    ApiRejectedRequest,
    ApiUnavailable,
    IncompleteAnswer,
    MalformedResponse,
    QuotaExceeded,
)

REDACTED = "***"
_KEY_IN_URL = re.compile(r"(serviceKey=)[^&\s'\"]*", re.IGNORECASE)

# resultCd values that retrying cannot fix, with what they mean in English.
REJECTED_RESULT_CODES: dict[str, str] = {
    "1": "wrong service key",
    "2": "the service key is outside its validity period",
    "3": "the service key is not approved for this API",
    "5": "a request parameter is invalid (kind / serviceKey / dataType / flowerGubn)",
}
QUOTA_RESULT_CODE = "4"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def redact(text: str, secret: str | None = None) -> str:
    """Remove a service key from text: any serviceKey= URL parameter and the literal value."""
    text = _KEY_IN_URL.sub(rf"\g<1>{REDACTED}", text)
    if secret:
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, REDACTED)
    return text


class _RedactServiceKey(logging.Filter):
    """httpx logs every request URL at INFO; the URL carries the key as a query parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


_redaction_filter = _RedactServiceKey()
for _name in ("httpx", "httpcore"):
    if _redaction_filter not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_redaction_filter)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


def verifying_page_size(rows_walked: int) -> int:
    """countPerPage for re-asking a walked day in one page: what the walk saw, plus room.

    The room lets rows added by a late correction still fit, and makes the answer a last page
    (fewer rows than asked), the only proof the API gives that nothing follows.
    """
    return rows_walked + max(100, rows_walked // 10)


@dataclass
class CategoryDay:
    """Everything one category answered for one auction date."""

    auction_date: date
    category: Category
    items: list[ApiItem]
    api_calls: int
    fetched_at: datetime
    # Each page's body exactly as received, for the raw response cache.
    bodies: list[bytes]
    # countPerPage the stored bodies were asked with (the verifying page's size after a walk).
    page_size: int = 0


@dataclass
class AtFlowerClient:
    """Fetches one auction date and category, one large page at a time.

    The server pages by row number over an order with ties in totQty, and the ties come back
    in a new order on every call: a walk over several pages repeats some rows and skips as
    many others. So a walk is never the answer. It only measures the day; the day is then
    asked again in one page with room to spare, and that page is accepted only if it is a
    last page (fewer rows than asked) holding every row the walk saw. Anything else fails the
    date with IncompleteAnswer. A day that fits the first page costs exactly one call.

    `reserve_call(auction_date, category)` runs before every HTTP attempt, retries and extra
    pages included; it raises (QuotaExceeded) to refuse the call, which is then not made.
    """

    base_url: str
    service_key: str
    page_size: int = 5000
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(60.0, connect=10.0))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    max_pages: int = 200
    reserve_call: Callable[[date, Category], None] | None = None
    # Every HTTP call this client has made, retries included: what the quota counts.
    calls_made: int = field(default=0, init=False)
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> AtFlowerClient:
        self._http = httpx.Client(timeout=self.timeout, transport=self.transport)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def fetch_day(self, auction_date: date, category: Category) -> CategoryDay:
        fetched_at = datetime.now(UTC)
        body, page, calls = self._fetch_page(auction_date, category, 1, self.page_size)
        if len(page) < self.page_size:  # the usual answer: one last page, one call
            return CategoryDay(
                auction_date, category, page, calls, fetched_at, [body], self.page_size
            )
        walked = [page]
        for page_number in range(2, self.max_pages + 1):
            _, page, attempts = self._fetch_page(
                auction_date, category, page_number, self.page_size
            )
            calls += attempts
            walked.append(page)
            if len(page) < self.page_size:
                break
        else:
            raise ApiUnavailable(
                auction_date,
                category.label,
                f"still full pages after {self.max_pages} pages of {self.page_size} rows; "
                "giving up",
            )
        rows_walked = sum(len(p) for p in walked)
        seen = {item.key() for p in walked for item in p}
        size = verifying_page_size(rows_walked)
        body, page, attempts = self._fetch_page(auction_date, category, 1, size)
        calls += attempts
        keys = {item.key() for item in page}
        problem = ""
        if len(page) >= size:
            problem = "a full page, so more rows may follow"
        elif len(page) < rows_walked:
            problem = (
                f"fewer than the {rows_walked:,} rows the walk returned (the server caps "
                "countPerPage, or the day changed while it was fetched)"
            )
        elif not seen <= keys:
            problem = (
                f"without {len(seen - keys):,} of the rows the walk saw (the day changed while "
                "it was fetched)"
            )
        if problem:
            raise IncompleteAnswer(
                auction_date,
                category.label,
                f"the answer took {len(walked)} pages of {self.page_size} rows "
                f"(FLOWER_API_PAGE_SIZE), and the server orders rows with ties in totQty "
                f"differently on every call, so such a walk repeats and skips rows "
                f"({rows_walked - len(seen):,} repeated here); asked again in one page of "
                f"{size:,} rows, the server returned {len(page):,}: {problem}. The answer "
                "cannot be proven complete, so nothing is written for this date; raise "
                "FLOWER_API_PAGE_SIZE above the day's rows and run the date again",
            )
        return CategoryDay(auction_date, category, page, calls, fetched_at, [body], size)

    def _params(
        self, auction_date: date, category: Category, page_number: int, page_size: int
    ) -> dict[str, str]:
        return {
            "kind": "f001",
            "serviceKey": self.service_key,
            "baseDate": auction_date.isoformat(),
            "flowerGubn": category.code,
            "dataType": "json",
            "countPerPage": str(page_size),
            "currentPage": str(page_number),
        }

    def _fetch_page(
        self, auction_date: date, category: Category, page_number: int, page_size: int
    ) -> tuple[bytes, list[ApiItem], int]:
        """One page, retried on transient faults: its body, its items and the calls it took."""
        if self._http is None:
            raise RuntimeError("use AtFlowerClient as a context manager")
        params = self._params(auction_date, category, page_number, page_size)
        last_cause = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            asked_wait = 0.0
            if self.reserve_call is not None:
                # Counted before it is made: a refusal (QuotaExceeded) means no request at all.
                self.reserve_call(auction_date, category)
            try:
                self.calls_made += 1
                response = self._http.get(self.base_url, params=params)
                self._check_status(response, auction_date, category)
                items = self._read_page(response.content, auction_date, category)
                return response.content, items, attempt
            except httpx.TransportError as exc:
                last_cause = f"{type(exc).__name__}: {exc}"
            except _TransientStatus as exc:
                last_cause = str(exc)
                asked_wait = exc.retry_after_s
            except MalformedResponse as exc:
                last_cause = str(exc)
            if attempt < self.retry.max_attempts:
                # A server that says when to come back is obeyed, up to the longest backoff.
                wait = max(
                    self.retry.delay(attempt, self.rng), min(asked_wait, self.retry.max_delay_s)
                )
                self.sleep(wait)
        raise ApiUnavailable(
            auction_date,
            category.label,
            f"page {page_number} failed {self.retry.max_attempts} times; last cause: "
            f"{redact(last_cause, self.service_key)}",
        )

    def _check_status(
        self, response: httpx.Response, auction_date: date, category: Category
    ) -> None:
        if response.status_code < 400:
            return
        where = f"HTTP {response.status_code} from {redact(str(response.url), self.service_key)}"
        if response.status_code in RETRYABLE_STATUS:
            retry_after = response.headers.get("Retry-After", "").strip()
            raise _TransientStatus(where, float(retry_after) if retry_after.isdigit() else 0.0)
        # Any other 4xx is a request we got wrong; retrying will not heal it.
        raise ApiHttpError(auction_date, category.label, where)

    def _read_page(self, body: bytes, auction_date: date, category: Category) -> list[ApiItem]:
        page = parse_page(body)
        if page.result_code == "0":
            return page.items
        # Gateways may quote the key they refused: never repeat it in errors and logs.
        message = redact(page.result_message, self.service_key)
        if page.result_code == QUOTA_RESULT_CODE:
            raise QuotaExceeded(auction_date, category.label, message, datetime.now(UTC))
        meaning = REJECTED_RESULT_CODES.get(
            page.result_code, "an error code the API does not document"
        )
        raise ApiRejectedRequest(auction_date, category.label, page.result_code, meaning, message)


class _TransientStatus(Exception):
    """An HTTP status worth retrying (429, 5xx), with the server's Retry-After in seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
