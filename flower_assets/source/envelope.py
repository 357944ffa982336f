"""Decoding the aT API's JSON envelope into items, keeping each item's exact bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from flower_assets.source.errors import MalformedResponse

# The fields one item carries; the docs call the grade `lv`, the service sends `lvNm`.
ITEM_FIELDS: tuple[str, ...] = (
    "saleDate",
    "flowerGubn",
    "pumName",
    "goodName",
    "lvNm",
    "maxAmt",
    "minAmt",
    "avgAmt",
    "totAmt",
    "totQty",
)
# The five fields that identify a row on the server: one row per day, category, item, variety, grade.
KEY_FIELDS: tuple[str, ...] = ("saleDate", "flowerGubn", "pumName", "goodName", "lvNm")


class _Body(msgspec.Struct):
    resultCd: str | int | None = None
    resultMsg: str | None = None
    numOfRows: str | int | None = None
    items: list[msgspec.Raw] | None = None


class _Envelope(msgspec.Struct):
    response: _Body


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_item_decoder = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class ApiItem:
    """One item of an answer: its exact JSON text and its decoded fields."""

    raw: bytes
    fields: dict[str, Any]

    def key(self) -> tuple[Any, ...]:
        return tuple(map(self.fields.get, KEY_FIELDS))


@dataclass(frozen=True, slots=True)
class ApiPage:
    result_code: str
    result_message: str
    items: list[ApiItem]


def describe_body(body: bytes) -> str:
    """A short, safe description of an unreadable body for error messages."""
    head = body[:200].lstrip()
    if not head:
        return "an empty body"
    if head[:1] == b"<":
        kind = "XML" if head.startswith(b"<?xml") or head.startswith(b"<response") else "HTML"
        return f"an {kind} body ({len(body)} bytes) instead of JSON"
    return f"a body that is not the API's JSON envelope ({len(body)} bytes)"


def parse_page(body: bytes) -> ApiPage:
    """Decode one answer; raise MalformedResponse when it is not the API's JSON envelope."""
    try:
        envelope = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedResponse(f"{describe_body(body)}: {exc}") from None
    response = envelope.response
    if response.resultCd is None:
        raise MalformedResponse("the JSON envelope has no resultCd")
    result_code = str(response.resultCd).strip()
    raws = response.items or []
    items = []
    for raw in raws:
        try:
            fields = _item_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise MalformedResponse(f"an item is not a JSON object: {bytes(raw)[:80]!r}") from None
        items.append(ApiItem(raw=bytes(raw), fields=fields))
    if result_code == "0" and response.numOfRows is not None:
        declared = str(response.numOfRows).strip()
        if declared.isdigit() and int(declared) != len(items):
            raise MalformedResponse(
                f"numOfRows says {declared} items but the body holds {len(items)} (truncated answer?)"
            )
    return ApiPage(result_code=result_code, result_message=response.resultMsg or "", items=items)
