"""Sample mode: the bundled auction days, served through the real client as the API would.

Without FLOWER_API_KEY the client talks to an in-process httpx transport instead of the
network. It answers exactly like the aT server (JSON envelope, strings for numbers, `lvNm`,
paging by countPerPage / currentPage, resultCd 5 for a bad parameter), so sample mode runs the
same request, paging, parsing and loading code as production.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path

import httpx

from flower_assets.source.categories import Category

SAMPLE_KEY = "sample-mode"
_DATA = "data"

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


@cache
def sample_days() -> dict[date, dict[str, list[dict[str, str]]]]:
    """The bundled days: auction date -> category code -> rows as the server sends them."""
    days = {}
    for entry in resources.files("flower_assets.sample").joinpath(_DATA).iterdir():
        if entry.name.endswith(".json.gz"):
            days[date.fromisoformat(entry.name.removesuffix(".json.gz"))] = json.loads(
                gzip.decompress(entry.read_bytes())
            )
    return days


class NotInSample(Exception):
    pass


def sample_rows(auction_date: date, category: Category) -> list[dict[str, str]]:
    days = sample_days()
    if auction_date not in days:
        shipped = ", ".join(d.isoformat() for d in sorted(days))
        raise NotInSample(
            f"sample mode ships only the auction dates {shipped}; {auction_date.isoformat()}"
            " is not among them. Set FLOWER_API_KEY to fetch real data."
        )
    return days[auction_date].get(category.code, [])


def sample_transport() -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=answer(dict(request.url.params), sample_rows),
            headers={"content-type": "application/json;charset=UTF-8"},
        )

    return httpx.MockTransport(handle)


def write_sample_days(days: list[date], directory: Path) -> None:
    """Regenerate the bundled sample files from the synthetic market."""
    from flower_assets.sample.market import day_items

    for day in days:
        content = {c.code: day_items(day, c) for c in Category}
        data = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        (directory / f"{day.isoformat()}.json.gz").write_bytes(gzip.compress(data, mtime=0))
