import json

import pytest

from flower_assets.sample.days import envelope
from flower_assets.source.envelope import parse_page
from flower_assets.source.errors import MalformedResponse
from flower_assets_tests.conftest import item

DOC_EXAMPLE = (
    '{"response": {"resultCd": "0", "resultMsg": "OK", "numOfRows": "2", "items": [\n'
    '  {"saleDate": "2018-08-16", "flowerGubn": "절화", "pumName": "백합", "goodName": "메두사",\n'
    '   "lvNm": "특2", "maxAmt": "1800", "minAmt": "1800", "avgAmt": "1800",\n'
    '   "totAmt": "88200", "totQty": "49"},\n'
    '  {"saleDate": "2018-08-16", "flowerGubn": "절화", "pumName": "국화", "goodName": "샤로트",\n'
    '   "lvNm": "상2", "maxAmt": "1200", "minAmt": "1200", "avgAmt": "1200",\n'
    '   "totAmt": "48000", "totQty": "40"}]}}'
).encode()


def test_documented_answer_keeps_each_item_byte_for_byte():
    page = parse_page(DOC_EXAMPLE)
    assert page.result_code == "0"
    assert [i.fields["pumName"] for i in page.items] == ["백합", "국화"]
    assert page.items[0].fields["lvNm"] == "특2"
    # The raw layer stores the item's text exactly as sent, whitespace and all.
    assert page.items[0].raw.decode() in DOC_EXAMPLE.decode()
    assert b"\n   " in page.items[0].raw
    assert page.items[0].key() == ("2018-08-16", "절화", "백합", "메두사", "특2")


def test_empty_day_is_a_valid_answer_with_no_items():
    page = parse_page(b'{"response":{"resultCd":"0","resultMsg":"OK","numOfRows":"0","items":[]}}')
    assert page.result_code == "0" and page.items == []


def test_error_answer_carries_code_and_korean_message():
    body = envelope("1", "서비스 키 오류입니다.", [])
    page = parse_page(body)
    assert (page.result_code, page.result_message) == ("1", "서비스 키 오류입니다.")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b"", "empty body"),
        ("<html><body>점검 중입니다</body></html>".encode(), "HTML body"),
        (b'<?xml version="1.0"?><response><resultCd>0</resultCd></response>', "XML body"),
        (b'{"response":{"resultCd":"0","items":[{"saleDate":"2024-05-1', "not the API's JSON"),
        (b'{"error":"gateway"}', "not the API's JSON"),
    ],
)
def test_unreadable_bodies_are_malformed_with_a_clear_cause(body, phrase):
    with pytest.raises(MalformedResponse, match=phrase):
        parse_page(body)


def test_numofrows_disagreeing_with_items_is_a_truncated_answer():
    body = json.dumps(
        {"response": {"resultCd": "0", "resultMsg": "OK", "numOfRows": "3", "items": [item()]}}
    ).encode()
    with pytest.raises(MalformedResponse, match="numOfRows says 3"):
        parse_page(body)
