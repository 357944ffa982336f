"""History fills itself within the quota: the `history_backfill` sensor against a fake aT server.

40 history dates, a quota of 50 calls a day and a reserve of 10 for the daily schedule: the
test drives the platform's clock (flower_assets.source.clock) forward one KST day at a time.
Each day the sensor is evaluated as the daemon does, every minute, until it skips, and the runs
it requests are executed; at 07:00 the daily schedule's runs follow, from the reserve. History
takes 40 dates x 4 calls = 160 calls at 40 a day: 4 days. Its progress is read back through
the webserver's GraphQL, as the UI shows it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import dagster as dg
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source import clock
from flower_assets.source.cache import key_fingerprint
from flower_assets.source.categories import Category
from flower_assets.source.errors import SEOUL
from flower_assets.source.quota import ApiQuota
from flower_assets.warehouse.database import Warehouse
from flower_assets_tests.conftest import TEST_KEY, Market, fresh_definitions, item
from flower_assets_tests.webui import clean_env, embedded_home, webserver

pytestmark = pytest.mark.slow

QUOTA, RESERVE, CORRECTION_DAYS = 50, 10, 1
DAY_ONE = date(2024, 3, 11)
# Day one's correction window is 03-09 and 03-10 (the schedule's): history ends the day before.
HISTORY_LAST = DAY_ONE - timedelta(days=CORRECTION_DAYS + 2)
START = HISTORY_LAST - timedelta(days=39)


def market() -> Market:
    """Auctions on two days of three; the others answer empty, at the same cost."""
    scripted = Market()
    day = START
    while day <= DAY_ONE + timedelta(days=10):
        if (day - START).days % 3:
            key = day.isoformat()
            scripted.set(key, Category.CUT_FLOWERS, [item(day=key), item(day=key, good="b")])
        day += timedelta(days=1)
    return scripted


def test_history_fills_itself_within_the_quota(tmp_path, monkeypatch):
    home = embedded_home(tmp_path / "dagster_home")
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    now: list[datetime] = []
    monkeypatch.setattr(clock, "now", lambda: now[-1])
    with FakeAtServer(market().rows_for) as server:
        env = {
            "DAGSTER_HOME": str(home),
            "FLOWER_API_KEY": TEST_KEY,
            "FLOWER_API_BASE_URL": server.url,
            "FLOWER_DATABASE_URL": warehouse_url,
            "FLOWER_START_DATE": START.isoformat(),
            "FLOWER_API_DAILY_QUOTA": str(QUOTA),
            "FLOWER_HISTORY_RESERVE_CALLS": str(RESERVE),
            "FLOWER_CORRECTION_DAYS": str(CORRECTION_DAYS),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        defs = fresh_definitions().defs
        sensor = defs.resolve_sensor_def("history_backfill")
        schedule = defs.resolve_schedule_def("daily_auction_schedule")
        job = defs.resolve_job_def("flower_auction_job")
        resources = defs.get_repository_def().get_top_level_resources()
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # a key is set

        history_days, skips, cursor = [], [], None
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for n in range(6):
                day = DAY_ONE + timedelta(days=n)
                now.append(datetime.combine(day, time(0, 30), tzinfo=SEOUL))
                before = len(server.requests)
                while True:  # the daemon's ticks, until the sensor skips
                    context = dg.build_sensor_context(
                        instance=instance, cursor=cursor, resources=resources
                    )
                    result = sensor.evaluate_tick(context)
                    cursor = result.cursor
                    for event in result.asset_events:  # stored as the daemon stores them
                        instance.report_runless_asset_event(event)
                    if not result.run_requests:
                        skips.append(result.skip_message)
                        break
                    for request in result.run_requests:
                        assert request.tags["flower/trigger"] == "history"
                        assert TEST_KEY not in str(request.tags)
                        assert job.execute_in_process(instance=instance, tags=request.tags).success
                history_calls = len(server.requests) - before
                assert history_calls <= QUOTA - RESERVE, (day, history_calls)
                if history_calls:
                    history_days.append(day)

                # 07:00: the daily schedule's window, from the reserve.
                now.append(datetime.combine(day, time(7), tzinfo=SEOUL))
                tick = dg.build_schedule_context(
                    instance=instance,
                    scheduled_execution_time=now[-1],
                    repository_def=defs.get_repository_def(),
                )
                for request in schedule.evaluate_tick(tick).run_requests or []:
                    assert job.execute_in_process(
                        instance=instance, partition_key=request.partition_key, tags=request.tags
                    ).success
                assert len(server.requests) - before - history_calls <= RESERVE
                with Warehouse.open(warehouse_url) as wh:
                    counted = ApiQuota(wh).calls_on(key_fingerprint(TEST_KEY), day)
                assert counted == len(server.requests) - before <= QUOTA

            market_sensor = defs.resolve_sensor_def("market_after_auctions")
            market_runs = market_sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, resources=resources)
            ).run_requests
        assert not any(TEST_KEY in str(skip) for skip in skips)

    # 160 calls at 40 a day: four quota days, then nothing more to fetch.
    assert history_days == [DAY_ONE + timedelta(days=n) for n in range(4)]
    assert "budget is spent" in skips[0] and "resumes after midnight KST" in skips[0]
    assert skips[0].startswith("history 10 of 40 dates loaded")
    assert "3 quota days left" in skips[0] and "40 left for history" not in skips[0]
    assert "history is complete" in skips[3] and "history is complete" in skips[-1]
    # The market tables follow, from the first auction of the history on (START had none).
    first_auction = str(START + timedelta(days=1))
    assert market_runs[0].tags["dagster/asset_partition_range_start"] == first_auction

    with webserver(clean_env(**env), tmp_path / "webserver.log") as ui:
        data = ui.query(
            """{ assetNodeOrError(assetKey: {path: ["public_bidding_flowers"]}) {
                ... on AssetNode { assetObservations(limit: 1) { description
                  metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""
        )
        (latest,) = data["assetNodeOrError"]["assetObservations"]
        shown = {e["label"]: e.get("intValue") for e in latest["metadataEntries"]}
        assert shown["quota_days_left"] == 0
        # Each day one more date leaves the correction window, loaded by the schedule in it.
        assert shown["history_dates_loaded"] == shown["history_dates_total"] == 40 + 5
        assert latest["description"].startswith("history 45 of 45 dates loaded")
        sensors = ui.query(
            """{ sensorOrError(sensorSelector: {repositoryLocationName: "flower_assets",
                 repositoryName: "__repository__", sensorName: "history_backfill"}) {
                 ... on Sensor { description } } }"""
        )
        assert "FLOWER_HISTORY_RESERVE_CALLS" in sensors["sensorOrError"]["description"]
