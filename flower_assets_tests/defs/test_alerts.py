"""Alerts: failed checks grouped per run and check, failed runs, each delivered exactly once.

The sensor is evaluated against a real DagsterInstance (the repo's consolidated event log) and
posts to a real HTTP receiver on loopback; the cursor is carried from tick to tick as the
daemon would.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from flower_assets.defs.alerting import sensors
from flower_assets.defs.alerting.alerts import (
    AlertCursor,
    CheckOutcome,
    DeliveryFailed,
    alerts_for_run,
    check_alerts,
    error_text,
    list_dates,
    post,
    run_failure_alert,
    run_partitions,
)
from flower_assets.defs.alerting.sensors import AlertResource, build_alert_sensor
from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import TEST_KEY, Market, item, materialize

UI = "http://dagster.internal:3000"
OUR_KEYS = {key for a in flower_auction_assets for key in a.keys}
OUR_JOB = "flower_auction_job"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", fmt="%Y-%m-%d")
BIDDING = dg.AssetKey("bidding_flowers")


def always(_: int) -> bool:
    return True


def never(_: int) -> bool:
    return False


# Message composition (pure)


def outcome(check: str, day: str | None, passed: bool = False, severity: str = "ERROR", what=""):
    return CheckOutcome("bidding_flowers", check, day, passed, severity, what or f"{check} {day}")


def test_failures_are_grouped_per_asset_and_check_naming_every_failed_date():
    outcomes = [
        *(outcome("totals", day) for day in days_from("2024-05-06", 20)),
        outcome("totals", "2024-06-01", passed=True),
        outcome("grades", "2024-05-07", severity="WARN"),
        outcome("grades", "2024-05-06", severity="WARN"),
        CheckOutcome("flowers", "totals", "2024-05-06", False, "ERROR", "other asset"),
    ]
    alerts = check_alerts("run-1", outcomes)
    assert [a.title for a in alerts] == [
        "flower-assets: check grades failed on bidding_flowers for 2 auction dates (WARN)",
        "flower-assets: check totals failed on bidding_flowers for 20 auction dates",
        "flower-assets: check totals failed on flowers for 1 auction date",
    ]
    grades, totals, other = alerts
    assert grades.fields["Severity"] == "WARN" and totals.fields["Severity"] == "ERROR"
    assert grades.fields["Auction dates"] == "2024-05-06…2024-05-07"
    assert totals.fields["Auction dates"] == "2024-05-06…2024-05-25"
    assert other.fields["What"] == "other asset"
    assert totals.fields["What"].endswith("; 17 more in the run")
    assert len({a.key for a in alerts}) == 3 and all(a.run_id == "run-1" for a in alerts)


def test_the_latest_evaluation_of_a_date_decides_and_passing_checks_send_nothing():
    retried = [outcome("totals", "2024-05-06"), outcome("totals", "2024-05-06", passed=True)]
    assert check_alerts("r", retried) == []
    flaky = [outcome("totals", "2024-05-06", passed=True), outcome("totals", "2024-05-06")]
    (alert,) = check_alerts("r", flaky)
    assert alert.title.endswith("for 1 auction date")
    assert check_alerts("r", [outcome("a", "2024-05-06", passed=True)]) == []


def test_evaluations_without_a_partition_name_no_date_and_mixed_severities_are_counted():
    (undated,) = check_alerts("r", [outcome("schema", None, what="a column went missing")])
    assert undated.title == "flower-assets: check schema failed on bidding_flowers"
    assert "Auction dates" not in undated.fields
    assert undated.fields["What"] == "a column went missing"
    mixed = [
        outcome("totals", "2024-05-06"),
        outcome("totals", "2024-05-07", severity="WARN"),
        outcome("totals", None),
    ]
    (alert,) = check_alerts("r", mixed)
    assert alert.fields["Severity"] == "ERROR on 2, WARN on 1"
    assert alert.fields["Auction dates"] == "2024-05-06…2024-05-07"
    assert alert.fields["Also failed without an auction date"] == "1 evaluation(s)"
    assert not alert.title.endswith("(WARN)")


def test_dates_are_listed_as_ranges_up_to_a_cap_and_the_rest_is_counted():
    assert list_dates(["2024-05-08", "2024-05-06", "2024-05-07", "2024-05-10"]) == (
        "2024-05-06…2024-05-08, 2024-05-10"
    )
    assert list_dates(["2024-05-06", "2024-05-06", "not-a-date"]) == "2024-05-06, not-a-date"
    every_other = days_from("2024-01-01", 20)[::2]
    assert list_dates(every_other, limit=3) == "2024-01-01, 2024-01-03, 2024-01-05 and 7 more"
    year = days_from("2024-01-01", 366)
    assert list_dates(year, limit=1) == "2024-01-01…2024-12-31"


def test_run_failures_name_job_dates_and_error_and_come_first():
    assert run_partitions({"dagster/partition": "2024-05-10"}) == "2024-05-10"
    ranged = {
        "dagster/asset_partition_range_start": "2024-01-01",
        "dagster/asset_partition_range_end": "2024-03-31",
    }
    assert run_partitions(ranged) == "2024-01-01…2024-03-31"
    assert run_partitions({}) == "-"
    error = error_text("Run failed.", ["StepError: op x\n", "RuntimeError: 500", "Run failed."])
    assert error == "Run failed.\nStepError: op x\nRuntimeError: 500"
    failure = run_failure_alert("flower_auction_job", "2024-05-10", "x" * 5000, "r")
    assert len(failure.fields["Error"]) == 1500
    alerts = alerts_for_run("r", [outcome("totals", "2024-05-06")], failure)
    assert [a.key for a in alerts] == ["run failed", "check bidding_flowers totals"]


def test_the_payload_links_the_run_and_redacts_the_key():
    failure = run_failure_alert("job", "-", f"GET ?serviceKey={TEST_KEY}&x=1 failed", "abc")
    text = failure.payload("http://ui:3000/", TEST_KEY)["text"]
    assert TEST_KEY not in text and text.endswith("Run: http://ui:3000/runs/abc")


def test_the_cursor_remembers_the_messages_of_a_partly_delivered_run():
    cursor = AlertCursor(after=10).delivered(15, "run failed").delivered(15, "check a b")
    assert AlertCursor.parse(cursor.dump()) == cursor
    assert cursor.sent_for(15) == ("run failed", "check a b") and cursor.sent_for(16) == ()
    assert cursor.finished(15) == AlertCursor(after=15)
    assert AlertCursor.parse(cursor.finished(15).dump()).event is None


def test_post_stops_retrying_when_the_deadline_leaves_no_room(receiver):
    pauses: list[float] = []
    receiver.fail_next(10)
    with pytest.raises(DeliveryFailed, match="after 3 attempt"):
        post(receiver.url, {"text": "x"}, attempts=3, backoff_s=1.0, sleep=pauses.append)
    assert pauses == [1.0, 2.0]
    with pytest.raises(DeliveryFailed, match="after 1 attempt"):
        post(receiver.url, {"text": "x"}, attempts=3, deadline=100.0, clock=lambda: 99.5)
    assert receiver.posts == 4
    receiver.answers = []
    post(receiver.url, {"text": "ok"}, deadline=0.0, clock=lambda: 99.0)  # one attempt always
    assert receiver.texts == ["ok"]


# A webhook receiver and ticks as the daemon runs them


class Receiver:
    """A webhook on loopback that records JSON bodies; `fail_next` makes it answer 500."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.answers: list[int] = []  # status codes for the next posts; 200 once used up
        self.posts = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    receiver.posts += 1
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    if status == 200:
                        receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def fail_next(self, posts: int, after: int = 0) -> None:
        """Accept `after` posts, then answer 500 to the next `posts` posts."""
        self.answers = [200] * after + [500] * posts

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def tick(sensor, instance, cursor, url, **alert_fields):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"alerts": AlertResource(webhook_url=url, ui_base_url=UI, **alert_fields)},
    )
    sensor(context)
    return context.cursor


def ticks_until_quiet(sensor, instance, cursor, receiver, **alert_fields):
    """Tick, carrying the cursor, until a tick delivers nothing; returns the cursor and per-tick counts."""
    counts: list[int] = []
    for _ in range(30):
        before = len(receiver.bodies)
        cursor = tick(sensor, instance, cursor, receiver.url, **alert_fields)
        counts.append(len(receiver.bodies) - before)
        if counts[-1] == 0:
            return cursor, counts
    raise AssertionError(f"still delivering after 30 ticks: {counts}")


# Runs that leave failures in the event log


def days_from(first: str, count: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=n)).isoformat() for n in range(count)]


def check_run(
    instance: dg.DagsterInstance,
    days: list[str],
    failing: Mapping[str, Callable[[int], bool]],
    warn: frozenset[str] = frozenset(),
) -> str:
    """One ranged run of an asset with our key, logging one evaluation per auction date and check.

    `failing[name](n)` says whether check `name` fails on the n-th date of the range.
    """

    @dg.asset(key=BIDDING, partitions_def=DAILY)
    def checked(context):  # no annotation: annotations are strings in this module
        yield dg.MaterializeResult()
        for n, day in enumerate(context.partition_keys):
            for name, fails in failing.items():
                yield dg.AssetCheckEvaluation(
                    asset_key=BIDDING,
                    check_name=name,
                    passed=not fails(n),
                    partition=day,
                    severity=dg.AssetCheckSeverity.WARN
                    if name in warn
                    else dg.AssetCheckSeverity.ERROR,
                    description=f"{name} on {day}: 3 rows disagree",
                )

    job = dg.Definitions(assets=[checked]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        },
        raise_on_error=False,
    )
    assert result.success
    return result.run_id


def failed_run(
    instance: dg.DagsterInstance,
    day: str = "2024-05-10",
    job_name: str = OUR_JOB,
    error: str = "the aT API answered 500",
) -> str:
    @dg.op(name="fetch_auction_dates")
    def fetch() -> None:
        raise RuntimeError(error)

    @dg.job(name=job_name, partitions_def=DAILY)
    def job() -> None:
        fetch()

    result = job.execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
    assert not result.success
    return result.run_id


# Reading the messages back


def one(texts: list[str], title_part: str) -> str:
    found = [text for text in texts if title_part in text.splitlines()[0]]
    assert len(found) == 1, (title_part, [t.splitlines()[0] for t in texts])
    return found[0]


def field(text: str, name: str) -> str:
    (value,) = [line[len(name) + 2 :] for line in text.splitlines() if line.startswith(f"{name}: ")]
    return value


def named_dates(text: str) -> set[str]:
    """The auction dates a message names, with its ranges (`a…b`) expanded."""
    listed = re.sub(r" and \d+ more$", "", field(text, "Auction dates"))
    named: set[str] = set()
    for part in listed.split(", "):
        first, _, last = part.partition("…")
        day, end = date.fromisoformat(first), date.fromisoformat(last or first)
        while day <= end:
            named.add(day.isoformat())
            day += timedelta(days=1)
    return named


def titles(receiver: Receiver) -> list[str]:
    return [text.splitlines()[0].strip("*") for text in receiver.texts]


# The sensor, end to end


def test_a_backlog_of_a_thousand_failed_evaluations_and_a_run_failure_arrives_once_each(
    instance, receiver, monkeypatch
):
    monkeypatch.setenv("FLOWER_API_KEY", TEST_KEY)
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)  # starts watching from now
    days = days_from("2024-01-01", 125)
    failing = {f"check_{n}": always for n in range(8)}
    failing |= {"every_other_day": lambda n: n % 2 == 0, "passes": never}
    run_id = check_run(instance, days, failing, warn=frozenset({"check_0"}))  # 1,063 failed
    failed_id = failed_run(instance, error=f"GET returnData.api?serviceKey={TEST_KEY} -> 500")

    cursor, _ = ticks_until_quiet(sensor, instance, cursor, receiver)

    texts = receiver.texts
    assert len(texts) == 10  # 9 checks that failed, grouped per check, and the run failure
    for n in range(8):
        text = one(texts, f"check check_{n} failed on bidding_flowers for 125 auction dates")
        assert named_dates(text) == set(days)
        assert field(text, "Severity") == ("WARN" if n == 0 else "ERROR")
        assert f"{UI}/runs/{run_id}" in text
    every_other = one(texts, "check every_other_day failed on bidding_flowers for 63 auction dates")
    assert named_dates(every_other) < set(days[::2])
    assert field(every_other, "Auction dates").endswith(" and 13 more")  # 50 listed
    run_failure = one(texts, f"run of {OUR_JOB} failed")
    assert field(run_failure, "Auction dates") == "2024-05-10"
    assert f"{UI}/runs/{failed_id}" in run_failure and "-> 500" in run_failure
    assert all(TEST_KEY not in text for text in texts)
    assert not any("passes" in text for text in texts)
    tick(sensor, instance, cursor, receiver.url)
    assert len(receiver.bodies) == 10  # nothing twice


def test_a_delivery_failing_part_way_resumes_next_tick_without_duplicates_or_loss(
    instance, receiver
):
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    check_run(instance, days_from("2024-05-01", 5), {"a": always, "b": always, "c": always})
    failed_run(instance)
    receiver.fail_next(2, after=1)  # the 1st message arrives, both attempts of the 2nd fail
    cursor = tick(sensor, instance, cursor, receiver.url, attempts=2, backoff_s=0.0)
    assert receiver.posts == 3 and len(receiver.bodies) == 1  # stopped at the failed message

    cursor, _ = ticks_until_quiet(sensor, instance, cursor, receiver, attempts=2, backoff_s=0.0)

    assert len(titles(receiver)) == len(set(titles(receiver))) == 4  # checks a, b, c; the run
    for name in "abc":
        one(receiver.texts, f"check {name} failed on bidding_flowers for 5 auction dates")
    one(receiver.texts, f"run of {OUR_JOB} failed")


def test_a_tick_stops_at_its_delivery_budget_and_the_next_tick_continues(instance, receiver):
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    check_run(instance, days_from("2024-05-01", 3), {"a": always, "b": always, "c": always})
    failed_run(instance)

    # A spent budget still lets each tick deliver one message, so every tick makes progress.
    cursor, counts = ticks_until_quiet(sensor, instance, cursor, receiver, delivery_budget_s=0.0)

    assert counts == [1, 1, 1, 1, 0]
    assert len(set(titles(receiver))) == 4


def test_run_outcomes_are_read_in_storage_order_across_pages(instance, receiver):
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB}, page_size=2)
    cursor = tick(sensor, instance, None, receiver.url)
    expected = []
    for n in range(3):
        day = f"2024-05-0{n + 1}"
        check_run(instance, [day], {f"check_{n}": always})
        expected.append(f"check check_{n} failed on bidding_flowers for 1 auction date")
        failed_run(instance, day=day)
        expected.append(f"run of {OUR_JOB} failed")
        check_run(instance, [day], {"fine": never})

    ticks_until_quiet(sensor, instance, cursor, receiver)

    assert len(titles(receiver)) == len(expected)
    for title, part in zip(titles(receiver), expected, strict=True):
        assert part in title


def test_successful_runs_without_failed_checks_and_runs_not_ours_send_nothing(instance, receiver):
    failed_run(instance)  # before the first tick: history is not replayed
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    check_run(instance, days_from("2024-05-01", 3), {"a": never, "b": never})
    failed_run(instance, job_name="someone_elses_job")
    cursor = tick(sensor, instance, cursor, receiver.url)
    assert receiver.bodies == []
    failed_run(instance, day="2024-05-11")
    tick(sensor, instance, cursor, receiver.url)
    assert titles(receiver) == [f"flower-assets: run of {OUR_JOB} failed"]


def test_a_failed_run_that_only_checked_our_assets_is_ours(instance, receiver):
    @dg.asset(key=BIDDING)
    def stub() -> None: ...

    @dg.asset_check(asset=BIDDING)
    def totals_match() -> dg.AssetCheckResult:
        raise RuntimeError("warehouse unreachable")

    job = dg.Definitions(
        assets=[stub],
        asset_checks=[totals_match],
        jobs=[dg.define_asset_job("recheck", selection=dg.AssetSelection.checks(totals_match))],
    ).get_job_def("recheck")
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    assert not job.execute_in_process(instance=instance, raise_on_error=False).success
    tick(sensor, instance, cursor, receiver.url)
    assert titles(receiver) == ["flower-assets: run of recheck failed"]
    assert "RuntimeError: warehouse unreachable" in receiver.texts[0]


def test_an_error_after_a_delivery_keeps_the_cursor_and_one_before_fails_the_tick(
    instance, receiver, monkeypatch
):
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    failed_run(instance, day="2024-05-10")
    failed_run(instance, day="2024-05-11")
    real = sensors.check_outcomes
    calls: list[str] = []

    def second_call_fails(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("storage went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(sensors, "check_outcomes", second_call_fails)
    cursor = tick(sensor, instance, cursor, receiver.url)  # 1 sent: the tick keeps its cursor
    assert [field(t, "Auction dates") for t in receiver.texts] == ["2024-05-10"]
    calls.clear()
    monkeypatch.setattr(sensors, "check_outcomes", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # nothing sent yet: the tick fails, visibly
        tick(sensor, instance, cursor, receiver.url)
    monkeypatch.setattr(sensors, "check_outcomes", real)
    ticks_until_quiet(sensor, instance, cursor, receiver)
    assert [field(t, "Auction dates") for t in receiver.texts] == ["2024-05-10", "2024-05-11"]


def test_without_a_webhook_alerts_go_to_the_sensor_log(instance, capfd):
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, None)
    failed_run(instance)
    capfd.readouterr()
    cursor = tick(sensor, instance, cursor, None)
    logged = capfd.readouterr().err
    assert f"alert (FLOWER_ALERT_WEBHOOK_URL unset): *flower-assets: run of {OUR_JOB}" in logged
    tick(sensor, instance, cursor, None)
    assert "FLOWER_ALERT_WEBHOOK_URL unset" not in capfd.readouterr().err


# The real assets


def test_a_failed_check_and_a_failed_run_of_the_real_assets_alert_once_each(
    warehouse_url, instance, receiver, monkeypatch
):
    monkeypatch.setenv("FLOWER_API_KEY", TEST_KEY)
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, [item(good="x", tot_qty="-1"), item(good="y")])
    with FakeAtServer(market.rows_for) as server:
        (checked,) = materialize(
            ["2024-05-10"], warehouse_url, instance, server.url, raise_on_error=False
        )
    with FakeAtServer(market.rows_for, fault=lambda params, n: Reply(status=500)) as server:
        (failed,) = materialize(
            ["2024-05-11"], warehouse_url, instance, server.url, raise_on_error=False
        )
    assert not failed.success

    cursor = tick(sensor, instance, cursor, receiver.url)

    texts = receiver.texts
    check = one(texts, "check rejected_share_within_threshold failed on public_bidding_flowers")
    assert field(check, "Auction dates") == "2024-05-10"
    assert field(check, "Severity") == "ERROR"
    assert f"{UI}/runs/{checked.run_id}" in check
    # Neither run could load its date: each fails, and each failure alerts once.
    failures = [t for t in texts if f"run of {failed.dagster_run.job_name} failed" in t]
    assert sorted(field(t, "Auction dates") for t in failures) == ["2024-05-10", "2024-05-11"]
    run_failure = next(t for t in failures if field(t, "Auction dates") == "2024-05-11")
    assert f"{UI}/runs/{failed.run_id}" in run_failure
    loaded = [t for t in texts if "check auction_date_loaded failed" in t.splitlines()[0]]
    assert sorted(field(t, "Auction dates") for t in loaded) == ["2024-05-10", "2024-05-11"]
    # One message per run and check.
    assert len({(t.splitlines()[0], t.splitlines()[-1]) for t in texts}) == len(texts)
    assert all(TEST_KEY not in t for t in texts)
    tick(sensor, instance, cursor, receiver.url)
    assert len(receiver.bodies) == len(texts)  # nothing twice


def test_undelivered_alerts_of_the_real_assets_are_retried_next_tick_without_duplicates(
    warehouse_url, instance, receiver
):
    receiver.fail_next(3)  # every attempt of the first tick fails
    sensor = build_alert_sensor(OUR_KEYS, {OUR_JOB})
    cursor = tick(sensor, instance, None, receiver.url)
    market = Market()
    market.set("2024-05-10", Category.CUT_FLOWERS, [item(good="x", tot_qty="-1")])
    with FakeAtServer(market.rows_for) as server:
        materialize(["2024-05-10"], warehouse_url, instance, server.url, raise_on_error=False)
    cursor = tick(sensor, instance, cursor, receiver.url, attempts=3, backoff_s=0.0)
    assert receiver.posts == 3 and receiver.bodies == []
    ticks_until_quiet(sensor, instance, cursor, receiver, attempts=3, backoff_s=0.0)
    one(receiver.texts, "check rejected_share_within_threshold failed on public_bidding_flowers")
    assert len(titles(receiver)) == len(set(titles(receiver)))
