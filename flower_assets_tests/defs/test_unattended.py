"""Running unattended: schedule, correction window, cache, quota guard, alerts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import polars as pl

from flower_assets.cli import main as cli_main
from flower_assets.definitions import defs
from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.auction.checks import flower_auction_checks
from flower_assets.defs.auction.jobs import flower_auction_job
from flower_assets.defs.auction.schedules import build_daily_schedule, dates_for_tick
from flower_assets.defs.resources import AtApiResource
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.cache import estimate_backfill, kst_today
from flower_assets.source.categories import Category
from flower_assets.source.errors import SEOUL
from flower_assets.source.responses import ResponseCache
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    API_CALL_COUNTS,
    API_RESPONSES,
    PROCESS_LOGS,
    UPLOAD_LOGS,
)
from flower_assets_tests.conftest import (
    TEST_KEY,
    Market,
    fresh_definitions,
    item,
    latest_materializations,
    materialize,
    resources_for,
)

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
    return len(latest_materializations(result, asset))


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


def test_every_date_the_schedule_requests_is_fetched_from_the_api(warehouse_url, instance):
    # Today's tick (07:00 in Seoul): its correction window is the newest dates.
    tick = datetime.combine(kst_today(), time(7), tzinfo=SEOUL)
    schedule = build_daily_schedule(flower_auction_job, correction_days=3)
    context = dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    keys = [r.partition_key for r in schedule.evaluate_tick(context).run_requests]
    assert len(keys) == 4
    market = Market()
    for key in keys:
        market.set(key, Category.CUT_FLOWERS, [item(day=key)])
    with FakeAtServer(market.rows_for) as server:
        materialize(keys, warehouse_url, instance, server.url)  # every answer is now cached
        server.requests.clear()
        for key in keys:  # the runs the schedule requests, one per date
            materialize([key], warehouse_url, instance, server.url)
        asked = sorted({r["baseDate"] for r in server.requests})
    # The oldest date of the window too: its answer can change until the send 3 days later.
    assert asked == keys and len(server.requests) == 4 * len(keys)


def test_the_code_location_has_the_freshness_check_only_with_a_service_key(monkeypatch):
    def build(key: str | None) -> dg.Definitions:
        if key:
            monkeypatch.setenv("FLOWER_API_KEY", key)
        else:
            monkeypatch.delenv("FLOWER_API_KEY", raising=False)
        return fresh_definitions().defs

    try:
        for live, built in ((True, build(TEST_KEY)), (False, build(None))):
            repo = built.get_repository_def()
            assert repo.has_schedule_def("daily_auction_schedule")
            assert repo.has_job("flower_checks_job")
            sensors = {s.name for s in repo.sensor_defs}
            assert "flower_alerts" in sensors
            assert ("freshness_checks_sensor" in sensors) is live
            checks = {
                key.name
                for key in built.resolve_asset_graph().asset_check_keys
                if key.asset_key == dg.AssetKey("bidding_flowers")
            }
            assert ("freshness_check" in checks) is live
            # The daily job never runs the freshness check: it judges the latest date on its own.
            job_checks = {
                key.name
                for key in built.resolve_job_def(
                    "flower_auction_job"
                ).asset_layer.asset_graph.asset_check_keys
            }
            assert "freshness_check" not in job_checks
    finally:
        monkeypatch.undo()
        fresh_definitions()


# Cache and correction window


def test_cached_dates_rematerialize_with_zero_calls_and_refetch_on_request(warehouse_url, instance):
    with FakeAtServer(old_market().rows_for) as server:
        materialize(OLD, warehouse_url, instance, server.url)
        assert len(server.requests) == 12
        (again,) = materialize(["2024-05-09"], warehouse_url, instance, server.url)
        assert len(server.requests) == 12  # served from the raw response cache
        meta = latest_materializations(again, "public_bidding_flowers")[0].metadata
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


def changed(result: dg.ExecuteInProcessResult, asset: str) -> list[bool]:
    """content_changed of each materialization the run recorded for the asset."""
    return [m.metadata["content_changed"].value for m in latest_materializations(result, asset)]


def test_an_unchanged_refetch_rewrites_nothing_but_records_every_asset(warehouse_url, instance):
    latest = (kst_today() - timedelta(days=1)).isoformat()
    market = Market()
    market.set(latest, Category.CUT_FLOWERS, [item(day=latest), item(day=latest, good="b")])
    normalizing = ("flower_types", "flowers", "bidding_flowers")
    with FakeAtServer(market.rows_for) as server:
        (first,) = materialize([latest], warehouse_url, instance, server.url)
        with Warehouse.open(warehouse_url) as wh:
            processed = wh.read_table(PROCESS_LOGS).height
        (second,) = materialize([latest], warehouse_url, instance, server.url)
        assert len(server.requests) == 8  # inside the window: always asked again
        with Warehouse.open(warehouse_url) as wh:
            assert wh.read_table(PROCESS_LOGS).height == processed  # nothing recomputed
        market.set(
            latest,
            Category.CUT_FLOWERS,
            [item(day=latest, avg_amt="10100", tot_amt="505000"), item(day=latest, good="b")],
        )
        (third,) = materialize([latest], warehouse_url, instance, server.url)
    assert [changed(first, a) for a in normalizing] == [[True]] * 3
    raw_meta = latest_materializations(second, "public_bidding_flowers")[0].metadata
    assert raw_meta["content_changed"].value is False and raw_meta["api_calls"].value == 4
    # Every asset still records the date, so nothing turns Skipped or Missing in the UI.
    assert [changed(second, a) for a in normalizing] == [[False]] * 3
    assert second.success and not second.get_step_skipped_events()
    assert [changed(third, a) for a in (*normalizing, "public_bidding_flowers")] == [[True]] * 4
    # A date's data version is a digest of its content: an unchanged re-fetch keeps it, so no
    # re-run leaves a downstream table stale; a real change gives it a new one.
    first_v, second_v, third_v = (
        latest_materializations(r, "bidding_flowers")[0].tags["dagster/data_version"]
        for r in (first, second, third)
    )
    assert first_v == second_v != third_v


# Quota guard


def test_the_quota_stops_a_backfill_cleanly_and_the_estimate_is_right(warehouse_url, instance):
    resources = resources_for(warehouse_url, "unused")
    with FakeAtServer(old_market().rows_for) as server:
        resources["at_api"] = AtApiResource(
            service_key=TEST_KEY, base_url=server.url, backoff_s=0.01, max_attempts=2, daily_quota=6
        )
        job = dg.Definitions(
            assets=flower_auction_assets, asset_checks=flower_auction_checks, resources=resources
        ).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": OLD[0],
                "dagster/asset_partition_range_end": OLD[-1],
            },
        )
        # The guard refused the seventh call before making it, and no later date was asked for.
        assert len(server.requests) == 6
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
        cached = ResponseCache(wh).dates(date(2024, 5, 8), date(2024, 5, 10))
        stored = wh.read_range(UPLOAD_LOGS, date(2024, 5, 8), date(2024, 5, 10), ["auction_date"])
    assert raw_dates == {
        (date(2024, 5, 8), "success"),
        (date(2024, 5, 9), "failed"),
        (date(2024, 5, 10), "failed"),  # not asked: the key's quota ran out on 05-09
    }
    assert counts["calls"].to_list() == [6] and counts["key_fingerprint"][0] != TEST_KEY
    assert TEST_KEY not in counts["key_fingerprint"][0]
    assert stored.height == 3
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
