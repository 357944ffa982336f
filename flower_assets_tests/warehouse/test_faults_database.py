"""Database faults: unreachable, killed mid-write, the run killed mid-write, two runs at once,
a read-only file. After each, every table holds either the old or the new complete version of
the auction date, the masters hold no duplicates, and a plain re-run converges.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg2
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets.source.quota import ApiQuota
from flower_assets.transform import unchanged
from flower_assets.warehouse.connection import PostgresDatabase, SqliteDatabase
from flower_assets.warehouse.database import Warehouse, display_url
from flower_assets.warehouse.schemas import UPLOAD_LOGS
from flower_assets_tests.conftest import POSTGRES_ADMIN_URL, Market, _drop_tables, item
from flower_assets_tests.source.test_faults_http import (
    DAY,
    KEY,
    assert_masters_sound,
    assert_reconciles,
    closed_port,
    failure,
    partition_version,
    raw_items,
    rows_of,
    run,
    same_rows,
    version_a,
    version_b,
)

REPO = Path(__file__).resolve().parents[2]


def version_c() -> Market:
    """Another correction of version A, for a second concurrent writer."""
    market = Market()
    market.set(
        DAY,
        Category.CUT_FLOWERS,
        [
            item(day=DAY, good="레드", avg_amt="13000", tot_amt="650000"),
            item(day=DAY, good="옐로", grade="상1"),
        ],
    )
    return market


def load(url: str, instance: dg.DagsterInstance, market: Market) -> dg.ExecuteInProcessResult:
    with FakeAtServer(market.rows_for) as server:
        result = run(url, instance, server.url)
    assert result.success, failure(result)[1]
    return result


def assert_converges(url: str, instance: dg.DagsterInstance, market: Market) -> None:
    """A plain re-run stores the answer whole: every raw row, each loaded or kept aside."""
    load(url, instance, market)
    assert same_rows(raw_items(url), rows_of(market))
    assert_reconciles(url)
    assert_masters_sound(url)
    varieties = {row[2] for row in partition_version(url)["records"]}
    assert varieties == {row["goodName"] for row in rows_of(market)}


def fresh_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    _drop_tables(url)
    return url


# --- PostgreSQL unreachable at start ---------------------------------------------------------


@pytest.mark.parametrize("where", ["connection-refused", "no-such-database"])
def test_an_unreachable_warehouse_fails_fast_naming_it_without_its_password(
    where, instance, request
):
    password = secrets.token_hex(8)
    if where == "connection-refused":
        url = f"postgresql://flower:{password}@127.0.0.1:{closed_port()}/flower"
        cause = "Connection refused"
    else:
        request.getfixturevalue("postgres_url")  # skips when no PostgreSQL is reachable
        host = POSTGRES_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
        url = f"postgresql://postgres:{password}@{host}/flower_missing_{secrets.token_hex(4)}"
        cause = "does not exist"
    with FakeAtServer(version_a().rows_for) as server:
        started = time.monotonic()
        result = run(url, instance, server.url)
        elapsed = time.monotonic() - started
        calls = list(server.requests)
    assert not result.success and elapsed < 15
    step, message = failure(result)
    assert step == "flower_auction"
    assert "cannot connect to the warehouse postgresql://" in message and ":***@" in message
    assert cause in message
    assert password not in message
    assert calls == []  # no quota spent on answers that could not be stored


# --- PostgreSQL connection killed while a write is in progress --------------------------------


def _terminate(db: PostgresDatabase) -> None:
    """pg_terminate_backend from another connection: the server ends the writer's session."""
    pid = db._conn.get_backend_pid()
    admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert cursor.fetchone()[0] is True
    finally:
        admin.close()


@pytest.mark.parametrize("target", ["public_bidding_flowers", "flower_types", "bidding_flowers"])
def test_a_connection_killed_mid_write_rolls_the_date_back_and_a_rerun_converges(
    target, postgres_url, instance, monkeypatch
):
    _drop_tables(postgres_url)
    url = postgres_url
    load(url, instance, version_a())
    old = partition_version(url)
    killed: list[str] = []
    insert, upsert = PostgresDatabase.insert, PostgresDatabase.upsert

    def killing_insert(self, cursor, table, frame):
        insert(self, cursor, table, frame)  # the rows are written, not committed
        if table.name == target and not killed:
            killed.append(table.name)
            _terminate(self)

    def killing_upsert(self, cursor, table, statement, frame):
        upsert(self, cursor, table, statement, frame)
        if table.name == target and not killed:
            killed.append(table.name)
            _terminate(self)

    monkeypatch.setattr(PostgresDatabase, "insert", killing_insert)
    monkeypatch.setattr(PostgresDatabase, "upsert", killing_upsert)
    new = version_b()
    with FakeAtServer(new.rows_for) as server:
        result = run(url, instance, server.url)
    assert killed and not result.success
    # The date failed, the step went on; the run ends failed at its end, naming date and cause.
    step, message = failure(result)
    assert step == "bidding_flowers_checks"
    assert f"{DAY} (" in message and f"warehouse {display_url(url)}" in message
    assert "terminating connection" in message or "server closed the connection" in message
    mid = partition_version(url)
    if target == "public_bidding_flowers":
        assert mid == old  # nothing of the new answer was committed anywhere
    else:
        # The raw step committed the new answer; the killed write kept its previous version.
        assert same_rows(raw_items(url), rows_of(new))
        assert mid["records"] == old["records"] and mid["rejected"] == old["rejected"]
    assert_masters_sound(url)
    monkeypatch.undo()
    assert_converges(url, instance, new)


# --- runs in their own processes -------------------------------------------------------------

# One Dagster run in a process of its own, as `dagster asset materialize` would start it, with
# one hook: "hold:<table>" stops inside the transaction right after writing <table> (and waits
# to be killed); "meet:<dir>" waits before the raw write until the other run got there too.
CHILD = r"""
import json, os, sys, time
import dagster as dg
from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.resources import AtApiResource, PriceIndexSettings, QuarantineThreshold, WarehouseResource
from flower_assets.warehouse.connection import PostgresDatabase, SqliteDatabase
from flower_assets.warehouse.database import Warehouse

url, api_url, day, home, hook, report = sys.argv[1:]
kind, _, arg = hook.partition(":")

if kind == "hold":
    for cls in (SqliteDatabase, PostgresDatabase):
        def insert(self, cursor, table, frame, _insert=cls.insert):
            _insert(self, cursor, table, frame)
            if table.name == arg:
                with open(report + ".inside", "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(600)  # rows written, transaction open: killed here
        cls.insert = insert
elif kind == "meet":
    replace = Warehouse.replace_raw
    def replace_raw(self, *args, **kwargs):
        open(os.path.join(arg, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(arg)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return replace(self, *args, **kwargs)
    Warehouse.replace_raw = replace_raw

with dg.DagsterInstance.local_temp(home, overrides={"telemetry": {"enabled": False}}) as instance:
    result = dg.materialize(
        flower_auction_assets,
        partition_key=day,
        instance=instance,
        raise_on_error=False,
        resources={
            "at_api": AtApiResource(
                service_key=os.environ["CHILD_KEY"], base_url=api_url, backoff_s=0.01
            ),
            "warehouse": WarehouseResource(url=url),
            "quarantine_threshold": QuarantineThreshold(),
            "price_index": PriceIndexSettings(),
        },
    )
failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
with open(report, "w") as f:
    json.dump({"success": result.success, "failures": failures}, f)
"""


def start_child(tmp_path: Path, name: str, url: str, api_url: str, hook: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    home = tmp_path / f"home_{name}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    # A process with a service key: live partitions (the day is recent, outside the sample).
    env |= {"DAGSTER_DISABLE_TELEMETRY": "yes", "CHILD_KEY": KEY, "FLOWER_API_KEY": KEY}
    report = tmp_path / f"{name}.json"
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, str(script), url, api_url, DAY, str(home), hook, str(report)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def child_report(tmp_path: Path, name: str, child: subprocess.Popen) -> dict:
    child.wait(timeout=180)
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert (tmp_path / f"{name}.json").exists(), log[-3000:]
    return json.loads((tmp_path / f"{name}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "target"),
    # The raw write on SQLite (WAL recovery) and the records write on PostgreSQL (server-side
    # rollback, after the raw step had committed the new answer).
    [("sqlite", "public_bidding_flowers"), ("postgres", "bidding_flowers")],
)
def test_sigkill_while_writing_a_partition_leaves_a_complete_version_and_a_rerun_converges(
    kind, target, request, tmp_path, instance
):
    url = fresh_url(kind, request, tmp_path)
    load(url, instance, version_a())
    old = partition_version(url)
    new = version_b()
    inside = tmp_path / "killed.json.inside"
    with FakeAtServer(new.rows_for) as server:
        child = start_child(tmp_path, "killed", url, server.url, f"hold:{target}")
        try:
            deadline = time.monotonic() + 120
            while not inside.exists():
                log = (tmp_path / "killed.log").read_text(errors="replace")
                assert child.poll() is None, log[-3000:]
                assert time.monotonic() < deadline, "the run never reached the write"
                time.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    mid = partition_version(url)
    if target == "public_bidding_flowers":
        assert mid == old  # the open transaction died with the process
    else:
        assert same_rows(raw_items(url), rows_of(new))  # committed before the kill
        assert mid["records"] == old["records"] and mid["rejected"] == old["rejected"]
    assert_masters_sound(url)
    with dg.DagsterInstance.local_temp(str(tmp_path / "home_killed")) as killed_instance:
        # What the operator sees: a run that never finished, still marked as started.
        statuses = [r.status for r in killed_instance.get_runs()]
        assert statuses == [dg.DagsterRunStatus.STARTED]
    assert_converges(url, instance, new)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_runs_of_the_same_date_at_once_leave_one_complete_version(
    kind, request, tmp_path, instance
):
    url = fresh_url(kind, request, tmp_path)
    load(url, instance, version_a())
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    markets = {"b": version_b(), "c": version_c()}
    with FakeAtServer(markets["b"].rows_for) as b, FakeAtServer(markets["c"].rows_for) as c:
        children = {
            name: start_child(tmp_path, name, url, server.url, f"meet:{meeting}")
            for name, server in (("b", b), ("c", c))
        }
        reports = {name: child_report(tmp_path, name, child) for name, child in children.items()}
    assert len(os.listdir(meeting)) == 2  # both really reached the raw write together
    for report in reports.values():
        for message in report["failures"]:  # a loser must say why, naming the date
            assert DAY in message, message
    # Raw holds one answer whole, never a mix of the two; masters stay unique.
    stored = raw_items(url)
    winners = [name for name, market in markets.items() if same_rows(stored, rows_of(market))]
    assert len(winners) == 1, stored
    assert_masters_sound(url)
    if all(report["success"] for report in reports.values()):
        assert_reconciles(url)
    # Each run recorded what it changed from the answer it really replaced: every answer the
    # upload log says was stored can be rebuilt from the corrections.
    with Warehouse.open(url) as wh:
        uploads = wh.read_table(UPLOAD_LOGS)
        for content in uploads.filter(pl.col("status") == "success")["content_hash"]:
            assert (
                unchanged.content_hash(wh.answer_as_of(date.fromisoformat(DAY), content)) == content
            )
    assert_converges(url, instance, markets[winners[0]])


# --- a read-only SQLite file -----------------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make the file unwritable even for root (chattr +i), or by mode for anyone else."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root and chattr +i is not available: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_sqlite_warehouse_fails_the_run_and_keeps_its_data(tmp_path, instance):
    path = tmp_path / "warehouse.sqlite"
    url = f"sqlite:///{path}"
    load(url, instance, version_a())
    old = partition_version(url)
    new = version_b()
    with read_only(path), FakeAtServer(new.rows_for) as server:
        result = run(url, instance, server.url)
    assert not result.success
    step, message = failure(result)
    assert step == "flower_auction" and "readonly database" in message
    assert partition_version(url) == old
    assert_masters_sound(url)
    assert_converges(url, instance, new)


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_sqlite_warehouse_is_named_in_the_error(what, tmp_path, instance):
    directory = tmp_path / "warehouse"
    directory.mkdir()
    path = directory / "warehouse.sqlite"
    Warehouse.open(f"sqlite:///{path}").close()  # first use creates the tables
    with read_only(path if what == "file" else directory), FakeAtServer(version_b().rows_for) as s:
        result = run(f"sqlite:///{path}", instance, s.url)
    assert not result.success
    _, message = failure(result)
    assert str(path) in message, message


# --- the daily quota, reserved by concurrent runs against one warehouse -----------------------


def reserve_many(url: str, fingerprint: str, kst_date: str, quota: int, tries: int) -> int:
    """One run's worth of call reservations on its own connection; how many were granted."""
    with Warehouse.open(url) as wh:
        day = date.fromisoformat(kst_date)
        quota_ = ApiQuota(wh)
        return sum(quota_.reserve(fingerprint, day, quota) for _ in range(tries))


@pytest.mark.parametrize("workers", ["processes", "threads"])
def test_concurrent_call_reservations_never_exceed_the_daily_quota(workers, warehouse_url):
    quota, runs, tries = 60, 3, 40  # 120 calls wanted, 60 allowed
    with Warehouse.open(warehouse_url) as wh:
        assert ApiQuota(wh).reserve("otherkey", date(2024, 5, 10), quota)  # another key: its own
    if workers == "processes":
        pool = ProcessPoolExecutor(runs, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = ThreadPoolExecutor(runs)
    with pool:
        args = (warehouse_url, "samekey", "2024-05-10", quota, tries)
        granted = [f.result() for f in [pool.submit(reserve_many, *args) for _ in range(runs)]]
    assert sum(granted) == quota, granted
    with Warehouse.open(warehouse_url) as wh:
        counts = ApiQuota(wh)
        assert counts.calls_on("samekey", date(2024, 5, 10)) == quota
        assert counts.calls_on("otherkey", date(2024, 5, 10)) == 1
        # Used up: refused, and the refusal counts nothing.
        assert not counts.reserve("samekey", date(2024, 5, 10), quota)
        assert counts.calls_on("samekey", date(2024, 5, 10)) == quota
        # A quota of 0 allows nothing, not even a first call.
        assert not counts.reserve("newkey", date(2024, 5, 10), 0)
        assert counts.calls_on("newkey", date(2024, 5, 10)) == 0


def _open_at_once(path: str, barrier, answers) -> None:
    barrier.wait()
    try:
        SqliteDatabase(f"sqlite:///{path}").close()
        answers.put("ok")
    except Exception as exc:  # the test reports it
        answers.put(repr(exc))


def test_processes_opening_a_new_sqlite_warehouse_at_once_all_succeed(tmp_path):
    # Two first commands at once: SQLite answers one of two processes switching a new file to
    # WAL "database is locked" without waiting (seen: 8 of 180 opens failed before the retry).
    context = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(20):
        path = str(tmp_path / f"w{round_}.sqlite")
        barrier, answers = context.Barrier(6), context.Queue()
        openers = [
            context.Process(target=_open_at_once, args=(path, barrier, answers)) for _ in range(6)
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=120)
        failures += [a for a in (answers.get(timeout=10) for _ in openers) if a != "ok"]
    assert failures == []
