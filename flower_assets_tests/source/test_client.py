"""The aT client against answers in the real format: one call per day, paging, errors, retries."""

from __future__ import annotations

import logging
import random
import socket
import traceback
from datetime import UTC, date, datetime

import httpx
import pytest

from flower_assets.sample.days import answer, envelope
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.categories import Category
from flower_assets.source.client import AtFlowerClient, RetryPolicy, redact
from flower_assets.source.envelope import parse_page
from flower_assets.source.errors import (
    SEOUL,
    ApiHttpError,
    ApiRejectedRequest,
    ApiUnavailable,
    IncompleteAnswer,
    QuotaExceeded,
    next_quota_reset,
)
from flower_assets_tests.conftest import TEST_KEY, Market, item

DAY = date(2024, 5, 10)


def rows(n: int, day: str = "2024-05-10") -> list[dict]:
    return [item(day=day, good=f"품종{i:04d}", tot_qty=str(10_000 - i)) for i in range(n)]


class Recorder:
    """A MockTransport handler: the far side of the network, answering in the real format."""

    def __init__(self, market: Market, script: list[httpx.Response | Exception] | None = None):
        self.market = market
        self.script = list(script or [])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        return httpx.Response(200, content=answer(dict(request.url.params), self.market.rows_for))


def client_for(handler, page_size: int = 5000, attempts: int = 4, sleeps: list | None = None):
    return AtFlowerClient(
        base_url="https://flower.at.or.kr/api/returnData.api",
        service_key=TEST_KEY,
        page_size=page_size,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=attempts, base_delay_s=0.5, max_delay_s=4),
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )


def test_a_day_that_fits_one_page_costs_exactly_one_call_with_the_documented_parameters():
    market = Market()
    market.set("2024-05-10", Category.ORCHIDS, rows(120))
    recorder = Recorder(market)
    with client_for(recorder) as client:
        day = client.fetch_day(DAY, Category.ORCHIDS)
    assert (len(day.items), day.api_calls, len(day.bodies)) == (120, 1, 1)
    params = dict(recorder.requests[0].url.params)
    assert params == {
        "kind": "f001",
        "serviceKey": TEST_KEY,
        "baseDate": "2024-05-10",
        "flowerGubn": "3",
        "dataType": "json",
        "countPerPage": "5000",
        "currentPage": "1",
    }


def test_no_auction_day_is_an_empty_answer_not_an_error():
    recorder = Recorder(Market())
    with client_for(recorder) as client:
        day = client.fetch_day(DAY, Category.SPRING_ORCHIDS)
    assert day.items == [] and day.api_calls == 1


def test_pages_are_walked_only_while_full_then_verified_in_one_page():
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, rows(250))
    recorder = Recorder(market)
    with client_for(recorder, page_size=100) as client:
        day = client.fetch_day(DAY, Category.CUT_FLOWERS)
    asked = [(r.url.params["countPerPage"], r.url.params["currentPage"]) for r in recorder.requests]
    assert asked[:3] == [("100", "1"), ("100", "2"), ("100", "3")]
    # The walk saw 250 rows; one page with room to spare proves the day has no more.
    assert asked[3][1] == "1" and int(asked[3][0]) > 250 and len(asked) == 4
    assert len(day.items) == 250 and day.api_calls == 4 and client.calls_made == 4
    assert len(day.bodies) == 1 and day.page_size == int(asked[3][0])


def test_an_exactly_full_last_page_costs_one_more_call_that_comes_back_empty():
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, rows(200))
    recorder = Recorder(market)
    with client_for(recorder, page_size=100) as client:
        day = client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert len(day.items) == 200 and day.api_calls == 3 + 1


class ShuffledTies:
    """MockTransport handler: ORDER BY totQty DESC, ties in a fresh random order per request."""

    def __init__(self, served: list[dict], cap: int | None = None):
        self.served, self.cap = served, cap
        self.rng = random.Random(5)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        order = sorted(self.served, key=lambda r: (-int(r["totQty"]), self.rng.random()))
        size = int(request.url.params["countPerPage"])
        size = min(size, self.cap) if self.cap else size
        page = int(request.url.params["currentPage"])
        return httpx.Response(
            200, content=envelope("0", "OK", order[(page - 1) * size : page * size])
        )


def tied_rows(n: int = 1366) -> list[dict]:
    rng = random.Random(3)
    return [item(good=f"품종{i:04d}", tot_qty=str(1 + int(rng.expovariate(0.1)))) for i in range(n)]


@pytest.mark.parametrize("page_size", [50, 100, 500])
def test_a_walk_over_tied_rows_returns_every_served_row_once(page_size):
    served = tied_rows()
    server = ShuffledTies(served)
    with client_for(server, page_size=page_size) as client:
        day = client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert sorted(i.key() for i in day.items) == sorted(
        i.key() for i in parse_page(envelope("0", "OK", served)).items
    )
    assert len(day.items) == len(served)
    assert day.api_calls == len(server.requests) == -(-len(served) // page_size) + 1


def test_a_verifying_page_that_is_not_complete_fails_naming_date_category_and_cause():
    server = ShuffledTies(tied_rows(), cap=1000)  # the server answers at most 1,000 rows
    with client_for(server, page_size=500) as client, pytest.raises(IncompleteAnswer) as caught:
        client.fetch_day(DAY, Category.CUT_FLOWERS)
    message = str(caught.value)
    assert "2024-05-10" in message and Category.CUT_FLOWERS.label in message
    assert "cannot be proven complete" in message and "ties in totQty" in message
    assert len(server.requests) == 4


def test_every_attempt_is_reserved_before_it_is_made_and_a_refusal_stops_the_calls():
    reserved: list[tuple[date, Category]] = []

    def reserve(day: date, category: Category) -> None:
        if len(reserved) == 3:
            raise QuotaExceeded.counted(day, category.label, 3, datetime.now(UTC))
        reserved.append((day, category))

    recorder = Recorder(Market(), [httpx.Response(503)] * 10)
    with client_for(recorder, attempts=5) as client:
        client.reserve_call = reserve
        with pytest.raises(QuotaExceeded) as caught:
            client.fetch_day(DAY, Category.ORCHIDS)
    assert len(recorder.requests) == len(reserved) == client.calls_made == 3
    message = str(caught.value)
    assert "2024-05-10" in message and Category.ORCHIDS.label in message
    assert "the warehouse counted all 3 calls" in message and "resultCd 4" not in message


def test_a_key_repeated_within_one_page_is_kept_for_quarantine_to_judge():
    page = [item(), item(avg_amt="9999")]
    with client_for(
        Recorder(Market(), [httpx.Response(200, content=envelope("0", "OK", page))])
    ) as c:
        day = c.fetch_day(DAY, Category.CUT_FLOWERS)
    assert len(day.items) == 2


@pytest.mark.parametrize(
    ("code", "message", "meaning"),
    [
        ("1", "서비스 키 오류입니다.", "wrong service key"),
        ("2", "기간을 다시 설정하여 주십시오.", "outside its validity period"),
        ("3", "미승인된 공공데이터입니다. 관리자에게 문의하십시오.", "not approved"),
        (
            "5",
            "파라미터 입력값이 잘못되었습니다.(kind / serviceKey / dataType / flowerGubn)",
            "parameter is invalid",
        ),
    ],
)
def test_rejections_are_not_retried_and_name_date_category_cause_and_server_message(
    code, message, meaning
):
    recorder = Recorder(Market(), [httpx.Response(200, content=envelope(code, message, []))])
    with client_for(recorder) as client, pytest.raises(ApiRejectedRequest) as caught:
        client.fetch_day(DAY, Category.FOLIAGE)
    error = caught.value
    assert len(recorder.requests) == 1
    assert error.result_code == code and error.server_message == message
    text = str(error)
    assert "2024-05-10" in text and "관엽" in text and meaning in text and message in text
    assert TEST_KEY not in text


def test_quota_exhaustion_is_its_own_error_and_says_when_the_quota_resets():
    recorder = Recorder(
        Market(),
        [httpx.Response(200, content=envelope("4", "금일 호출 건수가 만료 되었습니다.", []))],
    )
    with client_for(recorder) as client, pytest.raises(QuotaExceeded) as caught:
        client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert len(recorder.requests) == 1
    resets = caught.value.resets_at
    assert resets.tzinfo == SEOUL and (resets.hour, resets.minute) == (0, 0)
    assert resets > datetime.now(UTC)
    assert resets.isoformat() in str(caught.value)


def test_quota_resets_at_the_next_midnight_in_seoul():
    # 15:30 UTC is already 00:30 the next day in Seoul.
    assert (
        next_quota_reset(datetime(2024, 5, 10, 15, 30, tzinfo=UTC)).isoformat()
        == "2024-05-12T00:00:00+09:00"
    )
    assert (
        next_quota_reset(datetime(2024, 5, 10, 14, 59, tzinfo=UTC)).isoformat()
        == "2024-05-11T00:00:00+09:00"
    )


@pytest.mark.parametrize(
    "fault",
    [
        httpx.Response(500, text="Internal Server Error"),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(503),
        httpx.Response(429),
        httpx.Response(200, content=b""),
        httpx.Response(200, text="<html><body>시스템 점검 중</body></html>"),
        httpx.Response(200, content=b'{"response":{"resultCd":"0","items":[{"saleDate"'),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("connection refused"),
    ],
    ids=["500", "502", "503", "429", "empty", "html", "truncated", "timeout", "connect"],
)
def test_transient_faults_are_retried_with_growing_backoff_then_succeed(fault):
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, rows(5))
    recorder = Recorder(market, [fault, fault])
    sleeps: list[float] = []
    with client_for(recorder, sleeps=sleeps) as client:
        day = client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert len(day.items) == 5 and day.api_calls == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_a_server_that_never_recovers_is_given_up_after_the_retry_budget():
    recorder = Recorder(Market(), [httpx.Response(503)] * 10)
    sleeps: list[float] = []
    with (
        client_for(recorder, attempts=4, sleeps=sleeps) as client,
        pytest.raises(ApiUnavailable) as caught,
    ):
        client.fetch_day(DAY, Category.ORCHIDS)
    assert len(recorder.requests) == 4 and len(sleeps) == 3
    text = str(caught.value)
    assert "2024-05-10" in text and "난" in text and "HTTP 503" in text and "4 times" in text
    assert TEST_KEY not in text and "serviceKey=***" in text


def test_a_client_error_other_than_429_is_not_retried():
    recorder = Recorder(Market(), [httpx.Response(404)])
    with client_for(recorder) as client, pytest.raises(ApiHttpError, match="HTTP 404"):
        client.fetch_day(DAY, Category.ORCHIDS)
    assert len(recorder.requests) == 1


def test_redact_removes_the_key_from_urls_and_text():
    url = f"https://flower.at.or.kr/api/returnData.api?kind=f001&serviceKey={TEST_KEY}&baseDate=2024-05-10"
    assert TEST_KEY not in redact(url)
    assert redact(url).count("serviceKey=***") == 1
    assert redact(f"key was {TEST_KEY}", TEST_KEY) == "key was ***"


def test_httpx_request_log_lines_are_redacted(caplog):
    market = Market()
    with caplog.at_level(logging.DEBUG), client_for(Recorder(market)) as client:
        client.fetch_day(DAY, Category.ORCHIDS)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request: GET" in logged
    assert TEST_KEY not in logged


# Real HTTP over loopback: where the transport itself is what fails.


def _loopback_client(url: str, attempts: int = 3, timeout_s: float = 0.5) -> AtFlowerClient:
    return AtFlowerClient(
        base_url=url,
        service_key=TEST_KEY,
        timeout=httpx.Timeout(timeout_s),
        retry=RetryPolicy(max_attempts=attempts, base_delay_s=0.01, max_delay_s=0.05),
    )


def test_loopback_connection_refused_gives_up_with_a_redacted_message():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        _loopback_client(f"http://127.0.0.1:{port}/api/returnData.api") as client,
        pytest.raises(ApiUnavailable) as caught,
    ):
        client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert "ConnectError" in str(caught.value)
    # The whole traceback a user would see, chained causes included, is free of the key.
    assert TEST_KEY not in "".join(traceback.format_exception(caught.value))


def test_loopback_slow_answer_times_out_and_the_retry_succeeds():
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, rows(3))
    slow_first = lambda _params, number: Reply(body=b"{}", delay_s=2.0) if number == 1 else None  # noqa: E731
    with (
        FakeAtServer(market.rows_for, fault=slow_first) as server,
        _loopback_client(server.url) as client,
    ):
        day = client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert len(day.items) == 3 and day.api_calls == 2


def test_loopback_connection_reset_mid_body_is_retried():
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, rows(3))
    full = answer(
        {
            "kind": "f001",
            "serviceKey": "k",
            "baseDate": "2024-05-10",
            "flowerGubn": "1",
            "dataType": "json",
            "countPerPage": "5000",
        },
        market.rows_for,
    )
    reset_first = lambda _p, n: Reply(body=full[:40], declared_length=len(full)) if n == 1 else None  # noqa: E731
    with (
        FakeAtServer(market.rows_for, fault=reset_first) as server,
        _loopback_client(server.url) as client,
    ):
        day = client.fetch_day(DAY, Category.CUT_FLOWERS)
    assert len(day.items) == 3 and day.api_calls == 2


def test_retry_after_is_obeyed_up_to_the_longest_backoff():
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, rows(1))
    slow_down = [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"Retry-After": "3600"}),
    ]
    sleeps: list[float] = []
    with client_for(Recorder(market, slow_down), sleeps=sleeps) as client:
        assert len(client.fetch_day(DAY, Category.CUT_FLOWERS).items) == 1
    assert sleeps[0] >= 3 and sleeps[1] == 4  # 4 s is this client's longest backoff
