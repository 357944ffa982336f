"""Running unattended: schedule, correction window, cache, quota guard, alerts."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import pytest

from flower_assets.categories import Category
from flower_assets.cli import main as cli_main
from flower_assets.definitions import defs, flower_auction_job
from flower_assets.errors import SEOUL
from flower_assets.resources import AtApiResource
from flower_assets.schedules import build_daily_schedule, dates_for_tick
from flower_assets.schemas import API_CALL_COUNTS, API_RESPONSES, UPLOAD_LOGS
from flower_assets.sensors import AlertResource, build_alert_sensor
from flower_assets.source import estimate_backfill, kst_today
from flower_assets.testing import FakeAtServer
from flower_assets.warehouse import Warehouse

from .conftest import TEST_KEY, Market, item, materialize, resources_for

OLD = ["2024-05-08", "2024-05-09", "2024-05-10"]


def old_market() -> Market:
    market = Market()
    for day in OLD:
        market.set(day, Category.CUT_FLOWERS, [item(day=day), item(day=day, good="b")])
        market.set(
            day,
            Category.ORCHIDS,
            [item(day=day, gubn="난", pum="호접란", good="만천홍", grade="특")],
        )
    return market


def materializations(result, asset: str) -> int:
    return len(result.asset_materializations_for_node(asset))


# Schedule


def test_schedule_requests_the_latest_date_and_the_correction_window():
    # 2024-05-11 07:00 in Seoul is 2024-05-10 22:00 UTC.
    tick = datetime(2024, 5, 10, 22, 0, tzinfo=UTC)
    assert dates_for_tick(tick, 3, date(2018, 1, 1)) == [date(2024, 5, d) for d in (7, 8, 9, 10)]
    assert dates_for_tick(tick, 3, date(2024, 5, 9)) == [date(2024, 5, 9), date(2024, 5, 10)]
    schedule = build_daily_schedule(flower_auction_job, correction_days=3)
    context = dg.build_schedule_context(
        scheduled_execution_time=tick.astimezone(SEOUL), repository_def=defs.get_repository_def()
    )
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == [
        "2024-05-07",
        "2024-05-08",
        "2024-05-09",
        "2024-05-10",
    ]
    assert [r.tags["flower/correction"] for r in requests] == ["true", "true", "true", "false"]
    assert len({r.run_key for r in requests}) == 4
    assert schedule.cron_schedule == "0 7 * * *" and schedule.execution_timezone == "Asia/Seoul"


def test_the_code_location_has_the_schedule_sensors_and_freshness_check():
    repo = defs.get_repository_def()
    assert repo.has_schedule_def("daily_auction_schedule")
    assert {s.name for s in repo.sensor_defs} >= {"flower_alerts", "freshness_checks_sensor"}
    checks = {
        key.name
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key == dg.AssetKey("bidding_flowers")
    }
    assert "freshness_check" in checks


# Cache and correction window


def test_cached_dates_rematerialize_with_zero_calls_and_refetch_on_request(warehouse_url, instance):
    with FakeAtServer(old_market().rows_for) as server:
        materialize(OLD, warehouse_url, instance, server.url)
        assert len(server.requests) == 12
        (again,) = materialize(["2024-05-09"], warehouse_url, instance, server.url)
        assert len(server.requests) == 12  # served from the raw response cache
        meta = again.asset_materializations_for_node("public_bidding_flowers")[0].metadata
        assert meta["api_calls"].value == 0 and meta["answers_from_cache"].value == 4
        assert meta["content_changed"].value is False
        materialize(["2024-05-09"], warehouse_url, instance, server.url, refetch=True)
        assert len(server.requests) == 16
    with Warehouse.open(warehouse_url) as wh:
        cache = wh.read_table(API_RESPONSES)
    assert (
        cache.height == 12
        and cache.select("auction_date", "flower_gubn", "page").is_duplicated().sum() == 0
    )
    body = json.loads(cache.filter(pl.col("flower_gubn") == "난")["body"][0])
    assert body["response"]["resultCd"] == "0" and cache["content_hash"].str.len_chars().min() == 64


def test_an_unchanged_refetch_in_the_correction_window_does_not_recompute_downstream(
    warehouse_url, instance
):
    latest = (kst_today() - timedelta(days=1)).isoformat()
    market = Market()
    market.set(latest, Category.CUT_FLOWERS, [item(day=latest), item(day=latest, good="b")])
    with FakeAtServer(market.rows_for) as server:
        (first,) = materialize([latest], warehouse_url, instance, server.url)
        (second,) = materialize([latest], warehouse_url, instance, server.url)
        assert len(server.requests) == 8  # inside the window: always asked again
        market.set(
            latest,
            Category.CUT_FLOWERS,
            [item(day=latest, avg_amt="10100", tot_amt="505000"), item(day=latest, good="b")],
        )
        (third,) = materialize([latest], warehouse_url, instance, server.url)
    assert [materializations(first, a) for a in ("flower_types", "flowers", "bidding_flowers")] == [
        1,
        1,
        1,
    ]
    raw_meta = second.asset_materializations_for_node("public_bidding_flowers")[0].metadata
    assert raw_meta["content_changed"].value is False and raw_meta["api_calls"].value == 4
    assert [
        materializations(second, a) for a in ("flower_types", "flowers", "bidding_flowers")
    ] == [0, 0, 0]
    assert second.success
    assert (
        third.asset_materializations_for_node("public_bidding_flowers")[0]
        .metadata["content_changed"]
        .value
        is True
    )
    assert [materializations(third, a) for a in ("flower_types", "flowers", "bidding_flowers")] == [
        1,
        1,
        1,
    ]
    versions = [
        r.asset_materializations_for_node("public_bidding_flowers")[0].tags["dagster/data_version"]
        for r in (first, second, third)
    ]
    assert versions[0] == versions[1] != versions[2]


# Quota guard


def test_the_quota_stops_a_backfill_cleanly_and_the_estimate_is_right(warehouse_url, instance):
    resources = resources_for(warehouse_url, "unused")
    with FakeAtServer(old_market().rows_for) as server:
        resources["at_api"] = AtApiResource(
            service_key=TEST_KEY, base_url=server.url, backoff_s=0.01, max_attempts=2, daily_quota=6
        )
        job = dg.Definitions(
            assets=defs.assets, resources=resources
        ).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": OLD[0],
                "dagster/asset_partition_range_end": OLD[-1],
            },
        )
        assert len(server.requests) == 6  # the guard refused the seventh call before making it
    assert not result.success
    failure = next(
        e for e in result.all_events if e.is_step_failure
    ).event_specific_data.error.to_string()
    assert "QuotaExceeded" in failure and "2024-05-09" in failure and "resets at" in failure
    with Warehouse.open(warehouse_url) as wh:
        raw_dates = set(
            wh.read_range(
                UPLOAD_LOGS, date(2024, 5, 1), date(2024, 5, 31), ["auction_date", "status"]
            ).rows()
        )
        counts = wh.read_table(API_CALL_COUNTS)
        cached = wh.cached_dates(date(2024, 5, 8), date(2024, 5, 10))
        stored = wh.read_range(UPLOAD_LOGS, date(2024, 5, 8), date(2024, 5, 10), ["auction_date"])
    assert raw_dates == {(date(2024, 5, 8), "success"), (date(2024, 5, 9), "failed")}
    assert counts["calls"].to_list() == [6] and counts["key_fingerprint"][0] != TEST_KEY
    assert TEST_KEY not in counts["key_fingerprint"][0]
    assert stored.height == 2
    # Day 1 is cached whole, day 2 in part (two categories answered before the guard stopped it).
    estimate = estimate_backfill([date.fromisoformat(d) for d in OLD], cached, kst_today(), 3, 0, 6)
    assert (estimate.answers_cached, estimate.calls_needed, estimate.quota_days) == (6, 6, 1)
    assert (
        estimate_backfill(
            [date(2024, 1, d) for d in range(1, 31)], set(), kst_today(), 3, 10, 50
        ).quota_days
        == 4
    )


def test_backfill_estimate_command_prints_calls_and_days(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLOWER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.sqlite'}")
    monkeypatch.setenv("FLOWER_API_KEY", TEST_KEY)
    monkeypatch.setenv("FLOWER_API_DAILY_QUOTA", "100")
    assert cli_main(["backfill-estimate", "--from", "2024-01-01", "--to", "2024-03-31"]) == 0
    out = capsys.readouterr().out
    assert "91 dates" in out and "API calls needed:                          364" in out
    assert "100 of 100" in out and "spans 4 quota day(s), starting today" in out


# Alerts


class Receiver:
    """A webhook receiver on loopback that fails its first `failures` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def tick(sensor, instance, cursor, url):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "alerts": AlertResource(
                webhook_url=url, ui_base_url="http://dagster.internal:3000", attempts=3
            )
        },
    )
    sensor(context)
    return context.cursor


def test_alert_sensor_delivers_each_failed_check_and_failed_run_exactly_once(
    warehouse_url, instance, receiver, monkeypatch
):
    monkeypatch.setenv("FLOWER_API_KEY", TEST_KEY)
    sensor = build_alert_sensor({a.key for a in defs.assets}, {"flower_auction_job"})
    cursor = tick(sensor, instance, None, receiver.url)  # starts watching from now
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, [item(good="x", tot_qty="-1"), item(good="y")])
    with FakeAtServer(market.rows_for) as server:
        (result,) = materialize(
            ["2024-05-10"], warehouse_url, instance, server.url, raise_on_error=False
        )
    assert not result.success  # the blocking rejected-share check stopped it
    cursor = tick(sensor, instance, cursor, receiver.url)
    texts = [b["text"] for b in receiver.bodies]
    check_alerts = [
        t
        for t in texts
        if "check rejected_share_within_threshold failed on public_bidding_flowers" in t
    ]
    run_alerts = [t for t in texts if "run of __ephemeral_asset_job__ failed" in t]
    assert len(check_alerts) == 1 and len(run_alerts) == 1
    # dates_match and duplicates passed; no_duplicate_keys passed; only failed checks alert.
    assert all("failed" in t for t in texts)
    assert "Auction date: 2024-05-10" in check_alerts[0] and "Severity: ERROR" in check_alerts[0]
    assert f"http://dagster.internal:3000/runs/{result.run_id}" in check_alerts[0]
    assert "Auction dates: 2024-05-10" in run_alerts[0]
    assert all(TEST_KEY not in t for t in texts)
    delivered = len(receiver.bodies)
    tick(sensor, instance, cursor, receiver.url)
    assert len(receiver.bodies) == delivered  # nothing twice


def test_undelivered_alerts_are_retried_on_the_next_tick_without_duplicates(
    warehouse_url, instance
):
    flaky = Receiver(failures=3)  # fails every attempt of the first tick
    try:
        sensor = build_alert_sensor({a.key for a in defs.assets}, {"flower_auction_job"})
        cursor = tick(sensor, instance, None, flaky.url)
        market = Market()
        market.set("2024-05-10", Category.CUT_FLOWERS, [item(good="x", tot_qty="-1")])
        with FakeAtServer(market.rows_for) as server:
            materialize(["2024-05-10"], warehouse_url, instance, server.url, raise_on_error=False)
        stuck = tick(sensor, instance, cursor, flaky.url)
        assert flaky.bodies == []
        tick(sensor, instance, stuck, flaky.url)
        first_delivery = [b["text"].splitlines()[0] for b in flaky.bodies]
        assert len(first_delivery) == len(set(first_delivery)) >= 2
    finally:
        flaky.close()
