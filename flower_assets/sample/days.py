"""Sample mode: the synthetic market's days, served through the real client as the API would.

Without FLOWER_API_KEY the client talks to an in-process httpx transport instead of the
network. It answers exactly like the aT server (JSON envelope, strings for numbers, `lvNm`,
paging by countPerPage / currentPage, resultCd 5 for a bad parameter), so sample mode runs the
same request, paging, parsing and loading code as production.

The days are not shipped: each answer is generated when asked, by `market.day_items`, which is
seeded by date, category and item and so gives the same bytes every time (pinned by the tests).
The sample period, `SAMPLE_PERIOD`, spans graduation season (February), Parents' Day (May 8)
and the summer lull (July and August); a date outside it is refused (`NotInSample`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache

import httpx

from flower_assets.sample.market import day_items
from flower_assets.source.categories import Category

SAMPLE_KEY = "sample-mode"
# First and last auction date sample mode serves (inclusive): seven months, 213 dates.
SAMPLE_PERIOD = (date(2024, 2, 1), date(2024, 8, 31))

RowsFor = Callable[[date, Category], list[dict[str, str]]]


def envelope(result_code: str, message: str, items: list[dict[str, str]]) -> bytes:
    """An answer in the API's JSON format."""
    body = {
        "response": {
            "resultCd": result_code,
            "resultMsg": message,
            "numOfRows": str(len(items)),
            "items": items,
        }
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def answer(params: Mapping[str, str], rows_for: RowsFor) -> bytes:
    """What the aT server answers for these query parameters, given the day's rows."""
    category_codes = {c.code: c for c in Category}
    try:
        auction_date = date.fromisoformat(params.get("baseDate", ""))
        page_size = int(params.get("countPerPage", "10"))
        page_number = int(params.get("currentPage", "1"))
    except ValueError:
        auction_date = None
    if (
        params.get("kind") != "f001"
        or not params.get("serviceKey")
        or auction_date is None
        or params.get("dataType") != "json"
        or page_size < 1
        or page_number < 1
    ):
        return envelope(
            "5", "파라미터 입력값이 잘못되었습니다.(kind / serviceKey / dataType / flowerGubn)", []
        )
    category = category_codes.get(params.get("flowerGubn", ""))
    rows = rows_for(auction_date, category) if category else []
    start = (page_number - 1) * page_size
    return envelope("0", "OK", rows[start : start + page_size])


class NotInSample(Exception):
    pass


@lru_cache(maxsize=8)  # a day paged in small pages asks for the same rows once per page
def _generated(auction_date: date, category: Category) -> tuple[dict[str, str], ...]:
    return tuple(day_items(auction_date, category))


def sample_rows(auction_date: date, category: Category) -> list[dict[str, str]]:
    """The rows the sample server answers for this date and category."""
    first, last = SAMPLE_PERIOD
    if not first <= auction_date <= last:
        raise NotInSample(
            f"sample mode serves only the auction dates {first} to {last} (the sample period); "
            f"{auction_date.isoformat()} is outside it. Set FLOWER_API_KEY to fetch real data."
        )
    return list(_generated(auction_date, category))


def sample_transport() -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=answer(dict(request.url.params), sample_rows),
            headers={"content-type": "application/json;charset=UTF-8"},
        )

    return httpx.MockTransport(handle)
