"""HTTP faults driven end to end: a real loopback FakeAtServer, the four assets, a real instance.

Every fault materializes one auction date through Dagster. A fault the client cannot heal must
fail the run with a message naming the auction date, the category and the cause (never the
service key) and leave the date's previous good version untouched in every table. A fault it
can heal must be retried within the budget and end in a complete, reconciled partition.

The auction dates used are the latest partitions, inside the correction window, so that a
re-run always asks the API again instead of replaying an earlier answer.
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from flower_assets.defs.partitions import auction_date_partitions
from flower_assets.defs.resources import (
    AtApiResource,
    PriceIndexSettings,
    QuarantineThreshold,
    WarehouseResource,
)
from flower_assets.sample.days import answer, envelope
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.cache import key_fingerprint, kst_today
from flower_assets.source.categories import Category
from flower_assets.source.quota import ApiQuota
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    REJECTED,
    UPLOAD_LOGS,
)
from flower_assets_tests.conftest import Market, item, latest_materializations, pipeline_job, tables

# The newest auction-date partitions: always re-fetched (late corrections), never served from a
# cache of earlier answers, so that every run below really talks to the fake server.
LAST = date.fromisoformat(auction_date_partitions.get_last_partition_key())
PREV = LAST - timedelta(days=1)
DAY = LAST.isoformat()
CUT, ORCHIDS = Category.CUT_FLOWERS, Category.ORCHIDS


def new_key() -> str:
    """A service key made up at run time: 32 hex digits like a real one, never written down."""
    return secrets.token_hex(16)


KEY = new_key()


# --- markets: the old (good, already loaded) and the new version of an auction date -----------


def version_a(day: str = DAY, market: Market | None = None) -> Market:
    market = market or Market()
    market.set(
        day,
        CUT,
        [
            item(day=day, good="레드"),
            item(day=day, good="화이트", grade="상1"),
            item(day=day, pum="국화", good="백마", grade="상2"),
        ],
    )
    market.set(day, ORCHIDS, [item(day=day, gubn="난", pum="호접란", good="만천홍", grade="특")])
    return market


def version_b(day: str = DAY, market: Market | None = None) -> Market:
    """A late correction of version A: 레드 re-priced, 국화 gone, a new variety 핑크."""
    market = market or Market()
    market.set(
        day,
        CUT,
        [
            item(day=day, good="레드", avg_amt="11000", tot_amt="550000"),
            item(day=day, good="화이트", grade="상1"),
            item(day=day, good="핑크", grade="특2"),
        ],
    )
    market.set(day, ORCHIDS, [item(day=day, gubn="난", pum="호접란", good="만천홍", grade="특")])
    return market


def rows_of(market: Market, day: str = DAY) -> list[dict]:
    d = date.fromisoformat(day)
    return [row for category in Category for row in market.rows_for(d, category)]


# --- running ---------------------------------------------------------------------------------


def resources(
    warehouse_url: str | dg.EnvVar,
    api_url: str,
    *,
    key: str | dg.EnvVar = KEY,
    attempts: int = 3,
    timeout_s: float = 2.0,
    page_size: int = 5000,
    max_rejected_share: float = 0.01,
    daily_quota: int = 1000,
) -> dict:
    return {
        "at_api": AtApiResource(
            service_key=key,
            base_url=api_url,
            backoff_s=0.01,
            max_attempts=attempts,
            timeout_s=timeout_s,
            page_size=page_size,
            daily_quota=daily_quota,
        ),
        "warehouse": WarehouseResource(url=warehouse_url),
        "quarantine_threshold": QuarantineThreshold(max_rejected_share=max_rejected_share),
        "price_index": PriceIndexSettings(),
    }


def run(
    warehouse_url: str | dg.EnvVar,
    instance: dg.DagsterInstance,
    api_url: str,
    day: str = DAY,
    **options,
) -> dg.ExecuteInProcessResult:
    """Materialize the four assets for one auction date; failures are returned, not raised."""
    return pipeline_job(resources(warehouse_url, api_url, **options)).execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False
    )


def failure(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """The failed step and everything its error says, chained causes included."""
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    return failures[0].step_key, failures[0].event_specific_data.error.to_string()


def check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def raw_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (materialization,) = latest_materializations(result, "public_bidding_flowers")
    return {k: v.value for k, v in materialization.metadata.items()}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what is stored --------------------------------------------------------------------------


def partition_version(url: str, day: date = LAST) -> dict[str, list]:
    """One auction date's content in every partitioned table, with ids replaced by names."""
    with Warehouse.open(url) as wh:
        raw = wh.read_partition(RAW, day)
        records = wh.read_partition(BIDDING, day)
        rejected = wh.read_partition(REJECTED, day)
        items, varieties = wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS)
    names = varieties.join(
        items.select(
            pl.col("id").alias("flower_type_id"), "flower_gubn", pl.col("name").alias("item")
        ),
        on="flower_type_id",
    ).select(
        pl.col("id").alias("flower_id"), "flower_gubn", "item", pl.col("name").alias("variety")
    )
    named = records.join(names, on="flower_id", how="left").select(
        "flower_gubn",
        "item",
        "variety",
        *(c for c in BIDDING.columns if c not in ("auction_date", "flower_id")),
    )
    return {
        "raw": sorted(raw["raw_item"].to_list()),
        "records": sorted(named.rows()),
        "rejected": sorted(rejected.select("raw_item", "reason").rows()),
    }


def raw_items(url: str, day: date = LAST) -> list[dict]:
    with Warehouse.open(url) as wh:
        return [json.loads(text) for text in wh.read_partition(RAW, day)["raw_item"]]


def same_rows(stored: list[dict], expected: list[dict]) -> bool:
    key = lambda row: json.dumps(row, ensure_ascii=False, sort_keys=True)  # noqa: E731
    return sorted(map(key, stored)) == sorted(map(key, expected))


def assert_reconciles(url: str, day: date = LAST) -> None:
    """Per category, raw rows = loaded rows + rejected rows: nothing lost, nothing invented."""
    with Warehouse.open(url) as wh:
        raw = wh.read_partition(RAW, day)
        records = wh.read_partition(BIDDING, day)
        rejected = wh.read_partition(REJECTED, day)
        items, varieties = wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS)
    gubn_of = varieties.join(
        items.select(pl.col("id").alias("flower_type_id"), "flower_gubn"), on="flower_type_id"
    ).select(pl.col("id").alias("flower_id"), "flower_gubn")
    loaded = Counter(records.join(gubn_of, on="flower_id", how="left")["flower_gubn"].to_list())
    kept_aside = Counter(rejected["flower_gubn"].to_list())
    assert Counter(raw["flower_gubn"].to_list()) == loaded + kept_aside, (raw, loaded, kept_aside)


def assert_masters_sound(url: str) -> None:
    """No item or variety twice (names compared without stray spaces), no dangling reference."""
    with Warehouse.open(url) as wh:
        items, varieties = wh.read_table(FLOWER_TYPES), wh.read_table(FLOWERS)
        records = wh.read_table(BIDDING)
    trimmed = pl.col("name").str.strip_chars()
    assert items.select("flower_gubn", trimmed).is_duplicated().sum() == 0, items
    assert varieties.select("flower_type_id", trimmed).is_duplicated().sum() == 0, varieties
    assert varieties.join(items, left_on="flower_type_id", right_on="id", how="anti").height == 0
    assert records.join(varieties, left_on="flower_id", right_on="id", how="anti").height == 0
    assert records.select("auction_date", "flower_id", "grade").is_duplicated().sum() == 0


def upload_log(url: str, run_id: str) -> dict:
    with Warehouse.open(url) as wh:
        logs = wh.read_table(UPLOAD_LOGS).filter(pl.col("run_id") == run_id)
    assert logs.height == 1, logs
    return logs.row(0, named=True)


# --- a warehouse holding the good version of DAY, copied for each test ------------------------


@pytest.fixture(scope="module")
def module_instance(tmp_path_factory):
    with dg.DagsterInstance.local_temp(
        str(tmp_path_factory.mktemp("instance")), overrides={"telemetry": {"enabled": False}}
    ) as instance:
        yield instance


@pytest.fixture(scope="module")
def good_warehouse(tmp_path_factory, module_instance) -> Path:
    path = tmp_path_factory.mktemp("good") / "warehouse.sqlite"
    with FakeAtServer(version_a().rows_for) as server:
        result = run(f"sqlite:///{path}", module_instance, server.url)
    assert result.success
    return path


@dataclass
class Stage:
    url: str
    instance: dg.DagsterInstance
    before: dict[str, pl.DataFrame]
    version: dict[str, list]

    def intact(self) -> bool:
        after = tables(self.url)
        return all(after[name].equals(frame) for name, frame in self.before.items())


@pytest.fixture
def stage(good_warehouse, module_instance, tmp_path) -> Stage:
    """A SQLite warehouse that already holds the good version A of DAY."""
    path = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(good_warehouse) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    url = f"sqlite:///{path}"
    return Stage(url, module_instance, tables(url), partition_version(url))


# --- faults ----------------------------------------------------------------------------------


class Script:
    """A fault for one category: what the server does to its requests, counting them."""

    def __init__(self, reply, category: Category = ORCHIDS, times: int | None = None):
        self.reply = reply  # Reply, or a function of (params, n-th request of the category)
        self.category = category
        self.times = times  # fail this many times, then answer normally; None: forever
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, params: dict[str, str], _number: int) -> Reply | None:
        if params.get("flowerGubn") != self.category.code:
            return None
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.times is not None and n > self.times:
            return None
        return self.reply(params, n) if callable(self.reply) else self.reply


def _cut(fraction: float):
    """The normal answer, declared whole but cut short (the peer resets mid-body)."""

    def reply(params: dict[str, str], _n: int) -> Reply:
        full = answer(params, version_b().rows_for)
        return Reply(body=full[: int(len(full) * fraction)], declared_length=len(full))

    return reply


def _truncated_json(params: dict[str, str], _n: int) -> Reply:
    """A complete HTTP answer whose JSON stops halfway (a proxy buffer cut it)."""
    full = answer(params, version_b().rows_for)
    return Reply(body=full[: len(full) // 2])


XML_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><response><resultCd>0</resultCd>'
    "<resultMsg>OK</resultMsg><numOfRows>1</numOfRows><items><item><saleDate>"
    + DAY
    + "</saleDate><flowerGubn>난</flowerGubn><pumName>호접란</pumName></item></items></response>"
).encode()
HTML_BODY = (
    "<!DOCTYPE html><html><head><title>점검</title></head>"
    "<body>시스템 점검 중입니다. 잠시 후 다시 이용해 주십시오.</body></html>"
).encode()
SHORT_ROWS = (
    b'{"response":{"resultCd":"0","resultMsg":"OK","numOfRows":"3","items":['
    + json.dumps(item(day=DAY, gubn="난", pum="호접란", good="만천홍"), ensure_ascii=False).encode()
    + b"]}}"
)

# id -> (what the server does to every request for 난, what the message must say, retried?)
TRANSIENT = {
    "http-500": (Reply(500, b"Internal Server Error", "text/plain"), "HTTP 500"),
    "http-502": (Reply(502, b"<html>502 Bad Gateway</html>", "text/html"), "HTTP 502"),
    "http-503": (Reply(503, b"", "text/plain"), "HTTP 503"),
    "http-429": (Reply(429, b"Too Many Requests", "text/plain"), "HTTP 429"),
    "html-maintenance-page": (Reply(200, HTML_BODY, "text/html;charset=UTF-8"), "an HTML body"),
    "empty-body": (Reply(200, b""), "an empty body"),
    "truncated-json": (_truncated_json, "not the API's JSON envelope"),
    "xml-instead-of-json": (Reply(200, XML_BODY, "text/xml;charset=UTF-8"), "an XML body"),
    "fewer-rows-than-numOfRows": (Reply(200, SHORT_ROWS), "numOfRows says 3"),
    "item-not-an-object": (
        Reply(200, b'{"response":{"resultCd":"0","resultMsg":"OK","items":["oops"]}}'),
        "an item is not a JSON object",
    ),
    # JSON that strict decoders refuse: an unpaired UTF-16 surrogate escape in one item.
    "lone-surrogate-escape": (
        Reply(200, envelope("0", "OK", [item(day=DAY, good="@")]).replace(b"@", rb"\ud83c")),
        "not the API's JSON envelope",
    ),
    "reset-mid-body": (_cut(0.3), "RemoteProtocolError"),
    "read-timeout": (Reply(200, b"{}", delay_s=1.5), "ReadTimeout"),
}

RESULT_CODES = {
    "1": ("서비스 키 오류입니다.", "resultCd 1: wrong service key"),
    "2": ("기간을 다시 설정하여 주십시오.", "resultCd 2: the service key is outside its validity"),
    "3": (
        "미승인된 공공데이터입니다. 관리자에게 문의하십시오.",
        "resultCd 3: the service key is not approved",
    ),
    "4": ("금일 호출 건수가 만료 되었습니다.", "resultCd 4: today's call quota"),
    "5": (
        "파라미터 입력값이 잘못되었습니다.(kind / serviceKey / dataType / flowerGubn)",
        "resultCd 5: a request parameter is invalid",
    ),
}


def assert_failed_cleanly(stage: Stage, result, cause: str, category: Category = ORCHIDS):
    """The date failed in the raw step, and the run at its end, naming date, category and cause;
    nothing stored changed."""
    assert not result.success
    step, message = failure(result)
    assert step == "bidding_flowers_checks"  # auction_date_loaded, once every date is judged
    assert DAY in message and category.label in message and cause in message, message
    assert KEY not in message
    (shown,) = latest_materializations(result, "public_bidding_flowers")
    failed = shown.metadata["load_failed"].value
    assert category.label in failed and cause in failed and KEY not in failed
    # The previous good version of the date is untouched in every table, masters included.
    assert stage.intact()
    assert partition_version(stage.url) == stage.version
    log = upload_log(stage.url, result.run_id)
    assert log["status"] == "failed" and cause in log["error_text"] and KEY not in log["error_text"]


@pytest.mark.parametrize(("reply", "cause"), TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_fault_that_never_heals_fails_the_date_and_keeps_the_previous_version(
    stage, reply, cause
):
    script = Script(reply)
    with FakeAtServer(version_b().rows_for, fault=script) as server:
        result = run(stage.url, stage.instance, server.url, attempts=3, timeout_s=0.5)
    assert_failed_cleanly(stage, result, cause)
    assert script.calls == 3  # the whole retry budget, and not one call more
    _, message = failure(result)
    assert "failed 3 times" in message


@pytest.mark.parametrize("code", RESULT_CODES)
def test_a_result_code_fails_at_once_with_its_meaning_and_the_servers_words(stage, code):
    server_message, cause = RESULT_CODES[code]
    script = Script(Reply(200, envelope(code, server_message, [])))
    with FakeAtServer(version_b().rows_for, fault=script) as server:
        result = run(stage.url, stage.instance, server.url)
    assert_failed_cleanly(stage, result, cause)
    _, message = failure(result)
    assert server_message in message
    assert script.calls == 1  # retrying cannot fix a key, a quota or a parameter
    if code == "4":
        assert "resets at" in message and "+09:00" in message


def test_a_client_error_other_than_429_fails_at_once_with_a_redacted_url(stage):
    script = Script(Reply(404, b"Not Found", "text/plain"))
    with FakeAtServer(version_b().rows_for, fault=script) as server:
        result = run(stage.url, stage.instance, server.url)
    assert_failed_cleanly(stage, result, "HTTP 404")
    assert script.calls == 1
    assert "serviceKey=***" in failure(result)[1]


def test_connection_refused_gives_up_quickly_naming_the_first_category(stage):
    url = f"http://127.0.0.1:{closed_port()}/api/returnData.api"
    started = time.monotonic()
    result = run(stage.url, stage.instance, url, attempts=3)
    assert time.monotonic() - started < 15
    assert_failed_cleanly(stage, result, "ConnectError", category=CUT)


def test_a_server_that_never_answers_is_given_up_in_bounded_time(stage):
    """Every call hangs: attempts x read timeout + backoff, then a clear error; never a hang."""
    attempts, timeout_s, hang_s = 3, 0.4, 30.0
    script = Script(Reply(200, b"{}", delay_s=hang_s), category=CUT)
    with FakeAtServer(version_b().rows_for, fault=script) as server:
        started = time.monotonic()
        result = run(stage.url, stage.instance, server.url, attempts=attempts, timeout_s=timeout_s)
        elapsed = time.monotonic() - started
    assert_failed_cleanly(stage, result, "ReadTimeout", category=CUT)
    assert script.calls == attempts
    # It waited out each read timeout, and gave up well before the server would have answered
    # even once; what is left above the timeouts is Dagster's own run overhead.
    assert attempts * timeout_s <= elapsed < min(hang_s, attempts * timeout_s + 12), elapsed


FLAKY = {
    "http-503": Reply(503, b"", "text/plain"),
    "http-429": Reply(429, b"", "text/plain"),
    "html-maintenance-page": Reply(200, HTML_BODY, "text/html"),
    "reset-mid-body": _cut(0.5),
    "read-timeout": Reply(200, b"{}", delay_s=1.5),
}


@pytest.mark.parametrize("reply", FLAKY.values(), ids=FLAKY.keys())
def test_a_server_that_fails_twice_then_answers_is_retried_to_a_complete_partition(stage, reply):
    script = Script(reply, times=2)
    new = version_b()
    with FakeAtServer(new.rows_for, fault=script) as server:
        result = run(stage.url, stage.instance, server.url, attempts=3, timeout_s=0.5)
    assert result.success
    assert script.calls == 3
    meta = raw_metadata(result)
    assert meta["api_calls"] == 4 + 2  # one per category, plus the two failed attempts
    assert meta["dagster/row_count"] == len(rows_of(new))
    # The new version is stored whole: every raw row, each loaded or quarantined, masters sound.
    assert same_rows(raw_items(stage.url), rows_of(new))
    assert_reconciles(stage.url)
    assert_masters_sound(stage.url)
    assert check_results(result)[("bidding_flowers", "reconciles_with_raw")] is True
    assert "핑크" in {row[2] for row in partition_version(stage.url)["records"]}


def test_an_answer_for_another_date_is_kept_raw_and_quarantined_as_wrong_sale_date(stage):
    """A few rows dated another day inside an otherwise good answer (within the threshold)."""
    market = Market()
    good = [
        item(day=DAY, good=f"품종{i:03d}", tot_qty=str(500 - i), tot_amt=str(10_000 * (500 - i)))
        for i in range(200)
    ]
    stray = item(day=PREV.isoformat(), good="어제것")
    market.set(DAY, CUT, [*good, stray])
    with FakeAtServer(market.rows_for) as server:
        result = run(stage.url, stage.instance, server.url)
    assert result.success
    assert same_rows(raw_items(stage.url), [*good, stray])  # raw keeps the stray row
    version = partition_version(stage.url)
    assert [(json.loads(r)["goodName"], reason) for r, reason in version["rejected"]] == [
        ("어제것", "wrong_sale_date")
    ]
    assert len(version["records"]) == 200
    checks = check_results(result)
    assert checks[("public_bidding_flowers", "dates_match_partition")] is False
    assert checks[("bidding_flowers", "reconciles_with_raw")] is True
    assert_reconciles(stage.url)


def test_a_whole_answer_for_another_date_is_kept_raw_and_blocks_the_normalized_tables(stage):
    """A server ignoring baseDate (the `sample` key always answers 2018-08-16)."""
    other = "2018-08-16"
    market = version_a(other, Market())
    market.days = {(LAST, category): rows for (_, category), rows in market.days.items()}
    with FakeAtServer(market.rows_for) as server:
        result = run(stage.url, stage.instance, server.url)
    # The date is blocked; the run, which could not load the date asked for, ends failed.
    assert not result.success
    checks = check_results(result)
    assert checks[("bidding_flowers", "auction_date_loaded")] is False
    assert checks[("public_bidding_flowers", "rejected_share_within_threshold")] is False
    assert checks[("public_bidding_flowers", "dates_match_partition")] is False
    logged = " ".join(e.user_message for e in stage.instance.all_logs(result.run_id))
    assert "wrong_sale_date" in logged and DAY in logged
    # The raw layer keeps what the API said; records and quarantine keep the previous version.
    assert same_rows(raw_items(stage.url), rows_of(market))
    version = partition_version(stage.url)
    assert version["records"] == stage.version["records"]
    assert version["rejected"] == stage.version["rejected"]
    (recorded,) = latest_materializations(result, "bidding_flowers")
    assert "rejected_share_within_threshold" in recorded.metadata["blocked_by"].value


def test_a_walk_whose_pages_overlap_is_replaced_by_one_verified_page(stage):
    """Unstable order between calls: page 2 repeats a row of page 1 instead of the one it skipped.

    The walk is not trusted: the day is asked again in one page large enough for it, and that
    page, a last page (fewer rows than asked), is the answer stored.
    """
    rows = [item(day=DAY, good=f"동순위{i}", tot_qty="10") for i in range(4)]

    def unstable(params: dict[str, str], _n: int) -> Reply:
        size, page = int(params["countPerPage"]), int(params["currentPage"])
        if size > 3:  # one page large enough for the day: every row once
            return Reply(body=envelope("0", "OK", rows[:size]))
        # Page 2 comes from a new tie order: row 2 again where row 3 should be; row 3 is skipped.
        return Reply(body=envelope("0", "OK", rows[:3] if page == 1 else [rows[2]]))

    script = Script(unstable, category=CUT)
    with FakeAtServer(Market().rows_for, fault=script) as server:
        result = run(stage.url, stage.instance, server.url, page_size=3)
    assert result.success
    assert script.calls == 3  # two pages walked, one verifying page
    meta = raw_metadata(result)
    assert meta["api_calls"] == 3 + 3  # the verifying call is counted like any other
    assert meta["dagster/row_count"] == 4
    assert same_rows(raw_items(stage.url), rows)  # each row once, none skipped
    checks = check_results(result)
    assert checks[("public_bidding_flowers", "no_duplicate_keys")] is True
    assert checks[("bidding_flowers", "reconciles_with_raw")] is True
    assert len(partition_version(stage.url)["records"]) == 4


# --- unstable paging on a busy day, and the daily quota ---------------------------------------

BUSY_DAY_ROWS = 1366


def busy_cut_flower_day(day: str = DAY, n: int = BUSY_DAY_ROWS, seed: int = 7) -> list[dict]:
    """A busy cut-flower day: n distinct (item, variety, grade) rows, most totQty values tied."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        qty = max(1, int(rng.expovariate(1 / 15)))  # small quantities: hundreds of ties
        avg = 500 + 10 * rng.randrange(300)
        rows.append(
            item(
                day=day,
                pum=f"품목{i % 60:02d}",
                good=f"품종{i:04d}",
                grade=("특1", "특2", "상1", "상2")[i % 4],
                max_amt=str(avg + 200),
                min_amt=str(avg - 100),
                avg_amt=str(avg),
                tot_amt=str(avg * qty),
                tot_qty=str(qty),
            )
        )
    return rows


class ShuffledTies:
    """The aT server's paging of one date and category, as its published source does it.

    Every request orders the day's rows by totQty descending with ties in a fresh random order
    (the SQL has no tie-breaker), then cuts the page by ROWNUM. `cap` makes the server answer
    at most that many rows whatever countPerPage says (a gateway limit).
    """

    def __init__(self, rows: list[dict], category: Category = CUT, day: str = DAY, cap=None):
        self.rows, self.category, self.day, self.cap = rows, category, day, cap
        self.rng = random.Random(1366)
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, params: dict[str, str], _number: int) -> Reply | None:
        if params.get("flowerGubn") != self.category.code or params.get("baseDate") != self.day:
            return None
        with self._lock:
            self.calls += 1
            order = sorted(self.rows, key=lambda r: (-int(r["totQty"]), self.rng.random()))
        size, page = int(params["countPerPage"]), int(params["currentPage"])
        if self.cap is not None:
            size = min(size, self.cap)
        return Reply(body=envelope("0", "OK", order[(page - 1) * size : page * size]))


def counted_calls(url: str, key: str = KEY) -> int:
    with Warehouse.open(url) as wh:
        return ApiQuota(wh).calls_on(key_fingerprint(key), kst_today())


@pytest.mark.parametrize("page_size", [50, 100, 500])
def test_unstable_paging_on_a_busy_day_stores_every_served_row(page_size, warehouse_url, instance):
    served = busy_cut_flower_day()
    ties = ShuffledTies(served)
    with FakeAtServer(Market().rows_for, fault=ties) as server:
        result = run(warehouse_url, instance, server.url, page_size=page_size)
        requests = len(server.requests)
    assert result.success
    stored = raw_items(warehouse_url)
    assert (len(stored), len(served)) == (BUSY_DAY_ROWS, BUSY_DAY_ROWS)
    assert same_rows(stored, served)
    # Walked pages plus one verifying page for 절화, one call for each other category.
    walked = -(-BUSY_DAY_ROWS // page_size) + (BUSY_DAY_ROWS % page_size == 0)
    assert ties.calls == walked + 1 and requests == ties.calls + 3
    # Every call is counted against the quota and shown on the materialization.
    assert raw_metadata(result)["api_calls"] == requests == counted_calls(warehouse_url)
    assert_reconciles(warehouse_url)


def test_a_multi_page_answer_that_cannot_be_verified_fails_the_date_and_keeps_the_previous_version(
    stage,
):
    """The server caps countPerPage at 1,000: the one-page re-fetch cannot hold the day."""
    ties = ShuffledTies(busy_cut_flower_day(), cap=1000)
    with FakeAtServer(version_b().rows_for, fault=ties) as server:
        result = run(stage.url, stage.instance, server.url, page_size=500)
    assert_failed_cleanly(stage, result, "cannot be proven complete", category=CUT)
    _, message = failure(result)
    assert "ties in totQty" in message and "nothing is written" in message
    assert ties.calls == 3 + 1  # the walk, one verifying page, and no endless re-asking


def test_retries_never_spend_more_calls_than_the_daily_quota(warehouse_url, instance):
    quota = 2  # fewer than one page's retry budget
    script = Script(Reply(503, b"", "text/plain"), category=CUT)
    with FakeAtServer(version_b().rows_for, fault=script) as server:
        result = run(warehouse_url, instance, server.url, attempts=5, daily_quota=quota)
        requests = len(server.requests)
    assert not result.success
    _, message = failure(result)
    assert "QuotaExceeded" in message and DAY in message and CUT.label in message
    assert "the warehouse counted" in message and "resultCd 4" not in message
    assert requests == quota == counted_calls(warehouse_url)
    assert raw_items(warehouse_url) == []


def test_a_multi_page_day_never_spends_more_calls_than_the_daily_quota(warehouse_url, instance):
    quota = 5  # the walk alone needs 28 pages of 50
    with FakeAtServer(Market().rows_for, fault=ShuffledTies(busy_cut_flower_day())) as server:
        result = run(warehouse_url, instance, server.url, page_size=50, daily_quota=quota)
        requests = len(server.requests)
    assert not result.success
    _, message = failure(result)
    assert "QuotaExceeded" in message and DAY in message and CUT.label in message
    assert requests == quota == counted_calls(warehouse_url)
    assert raw_items(warehouse_url) == []


def test_quota_used_up_in_the_middle_of_a_backfill_keeps_the_dates_before_and_reruns_clean(
    tmp_path, module_instance
):
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    market = version_b(DAY, version_a(PREV.isoformat()))
    quota = Script(Reply(200, envelope("4", "금일 호출 건수가 만료 되었습니다.", [])), CUT)

    def quota_on_last_day(params: dict[str, str], n: int) -> Reply | None:
        return quota(params, n) if params.get("baseDate") == DAY else None

    tags = {
        "dagster/asset_partition_range_start": PREV.isoformat(),
        "dagster/asset_partition_range_end": DAY,
    }
    with FakeAtServer(market.rows_for, fault=quota_on_last_day) as server:
        job = pipeline_job(resources(url, server.url))
        result = job.execute_in_process(instance=module_instance, tags=tags, raise_on_error=False)
    assert not result.success
    _, message = failure(result)
    assert DAY in message and CUT.label in message and "resets at" in message
    # The date fetched before the quota ran out is stored whole in the raw layer.
    assert same_rows(raw_items(url, PREV), rows_of(market, PREV.isoformat()))
    assert raw_items(url, LAST) == []
    # After midnight KST: the same backfill again converges for both dates.
    with FakeAtServer(market.rows_for) as server:
        job = pipeline_job(resources(url, server.url))
        again = job.execute_in_process(instance=module_instance, tags=tags, raise_on_error=False)
    assert again.success
    for day in (PREV, LAST):
        assert same_rows(raw_items(url, day), rows_of(market, day.isoformat()))
        assert_reconciles(url, day)
    assert_masters_sound(url)
