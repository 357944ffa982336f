"""The market tables are a function of the auction records, whatever the order they arrive in.

Loaded in reverse order, in two overlapping commands at once, or with a date's records later
removed, the three market tables equal a one-pass build of the same records, row for row, on
SQLite and PostgreSQL; until the dates a change reached are rebuilt, their check
`built_on_current_history` fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flower_assets.market.history import history_digests, record_digests, stale_dates
from flower_assets.sample.days import sample_rows
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets.steps.market import market_dates
from flower_assets.steps.report import dates_between
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    VARIETY_PRICE_CHANGES,
)
from flower_assets_tests.conftest import REPO, _throwaway_database, materialize
from flower_assets_tests.defs.test_checks import by_check
from flower_assets_tests.defs.test_market import build_checks, build_market

FIRST, SPLIT, LAST = "2024-03-01", "2024-03-15", "2024-04-15"
# Natural keys: ids depend on the order the masters were filled in.
MARKET_KEYS = {
    DAILY_ITEM_PRICES: ["auction_date", "flower_gubn", "name"],
    VARIETY_PRICE_CHANGES: ["auction_date", "flower_gubn", "item_name", "variety_name", "grade"],
    CATEGORY_PRICE_INDEX: ["auction_date", "flower_gubn"],
}


def market_tables(url: str) -> dict[str, pl.DataFrame]:
    with Warehouse.open(url) as wh:
        frames = {table: wh.read_table(table) for table in MARKET_KEYS}
    return {
        table.name: frame.drop([c for c in frame.columns if c.endswith("_id")]).sort(
            MARKET_KEYS[table]
        )
        for table, frame in frames.items()
    }


def assert_same_market(url: str, reference: str) -> None:
    got, want = market_tables(url), market_tables(reference)
    for name, frame in want.items():
        assert frame.height, name
        assert_frame_equal(got[name], frame, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def load(url: str, instance, first: str, last: str, api_url: str | None = None, **kw) -> None:
    """Load the auction dates first..last, then build the market dates that need it."""
    materialize([first, last], url, instance, api_url, range_run=True, **kw)
    build(url, instance, [date.fromisoformat(first), date.fromisoformat(last)])


def build(url: str, instance, asked: list[date]) -> None:
    with Warehouse.open(url) as wh:
        days = market_dates(wh, None, dates_between(asked[0], asked[-1]) if asked else [])
    assert build_market(url, instance, days[0].isoformat(), days[-1].isoformat()).success


def history_is_current(instance, first: str, last: str) -> dict[str, bool]:
    judged = by_check(instance, "category_price_index")
    return {
        day.isoformat(): judged[("built_on_current_history", day.isoformat())]
        for day in dates_between(date.fromisoformat(first), date.fromisoformat(last))
    }


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The one-pass build of FIRST..LAST per kind of warehouse, built once for the module."""
    built: dict[str, str] = {}
    databases = []

    def reference(kind: str) -> str:
        if kind not in built:
            if kind == "sqlite":
                url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'warehouse.sqlite'}"
            else:
                databases.append(_throwaway_database("flower_reference"))
                url = next(databases[-1])
            with dg.DagsterInstance.ephemeral() as instance:
                load(url, instance, FIRST, LAST)
            built[kind] = url
        return built[kind]

    yield reference
    for database in databases:
        next(database, None)  # dropped


@pytest.fixture
def reference(warehouse_url, references) -> str:
    """The one-pass build of FIRST..LAST, in a warehouse of the same kind."""
    return references("sqlite" if warehouse_url.startswith("sqlite") else "postgres")


def test_an_earlier_range_loaded_after_a_later_one_gives_the_one_pass_tables(
    warehouse_url, instance, reference
):
    load(warehouse_url, instance, SPLIT, LAST)
    # The earlier range's records arrive; the later dates' market rows rest on a history
    # that no longer is: the check says so before anything is rebuilt.
    materialize([FIRST, "2024-03-14"], warehouse_url, instance, range_run=True)
    assert build_checks(warehouse_url, instance, SPLIT, LAST).success
    judged = history_is_current(instance, SPLIT, LAST)
    assert not judged[SPLIT]
    assert not judged[LAST]
    with Warehouse.open(warehouse_url) as wh:
        days = market_dates(wh, None, [])
    # From the first date with records (03-01 is a holiday) to the last built.
    assert (days[0], days[-1]) == (date(2024, 3, 4), date(2024, 4, 15))

    build(warehouse_url, instance, [])
    assert_same_market(warehouse_url, reference)
    assert build_checks(warehouse_url, instance, FIRST, LAST).success
    assert all(history_is_current(instance, FIRST, LAST).values())


def test_a_removal_rebuilds_every_date_it_reaches(warehouse_url, instance, tmp_path):
    removed = date(2024, 3, 19)  # its foliage records vanish in a later answer

    def without_foliage(day: date, category: Category) -> list[dict]:
        return [] if (day, category) == (removed, Category.FOLIAGE) else sample_rows(day, category)

    state = {"removed": False}

    def rows_for(day: date, category: Category) -> list[dict]:
        return (without_foliage if state["removed"] else sample_rows)(day, category)

    reference = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    with FakeAtServer(without_foliage) as server, dg.DagsterInstance.ephemeral() as other:
        load(reference, other, FIRST, "2024-03-31", server.url)
    with FakeAtServer(rows_for) as server:
        load(warehouse_url, instance, FIRST, "2024-03-31", server.url)
        state["removed"] = True
        materialize([removed.isoformat()], warehouse_url, instance, server.url, refetch=True)
    assert build_checks(warehouse_url, instance, "2024-03-18", "2024-03-31").success
    judged = history_is_current(instance, "2024-03-18", "2024-03-31")
    assert judged["2024-03-18"]  # before the removal: untouched
    assert not judged["2024-03-19"]
    assert not judged["2024-03-21"]  # a later foliage date: its chain changed
    assert judged["2024-03-22"]  # cut flowers and orchids only: nothing it rests on changed
    build(warehouse_url, instance, [])
    assert_same_market(warehouse_url, reference)


@pytest.mark.slow
def test_two_overlapping_commands_at_once_give_the_one_pass_tables(
    warehouse_url, reference, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FLOWER_DATABASE_URL": warehouse_url,
        "DAGSTER_DISABLE_TELEMETRY": "yes",
    }
    env.pop("FLOWER_API_KEY", None)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get():
        pass  # the instance exists before the two commands start
    commands = [
        subprocess.Popen(
            [sys.executable, "-m", "flower_assets.cli", "materialize", "--from", a, "--to", b],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for a, b in ((SPLIT, LAST), (FIRST, "2024-03-20"))
    ]
    outputs = [command.communicate(timeout=600)[0] for command in commands]
    for command, output in zip(commands, outputs, strict=True):
        assert command.returncode == 0, output[-3000:]
    assert_same_market(warehouse_url, reference)


def test_a_history_digest_changes_with_any_earlier_record_of_its_categories():
    def records(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "auction_date": date.fromisoformat(day),
                    "flower_gubn": gubn,
                    "flower_id": 1,
                    "grade": "특",
                    "quantity": 10,
                    "avg_price": price,
                    "total_price": price * 10,
                }
                for day, gubn, price in rows
            ]
        )

    base = [("2024-03-04", "절화", 100), ("2024-03-05", "관엽", 50), ("2024-03-06", "절화", 110)]
    before = history_digests(record_digests(records(base)), None)
    # An earlier cut-flower date arrives: every later cut-flower date changes, foliage not.
    after = history_digests(record_digests(records([("2024-03-01", "절화", 90), *base])), None)
    assert stale_dates(after, before) == [
        date(2024, 3, 1),
        date(2024, 3, 4),
        date(2024, 3, 6),
    ]
    # A base date after the index's first dates: dates before it rest on the links up to it.
    later_base = history_digests(record_digests(records(base)), date(2024, 3, 6))
    assert later_base[date(2024, 3, 4)] != before[date(2024, 3, 4)]
    # Removing a date's records makes it stale too (its rows must go).
    assert stale_dates(history_digests(record_digests(records(base[:2])), None), before) == [
        date(2024, 3, 6)
    ]


def test_the_market_sensor_builds_every_stale_date_once_no_load_is_under_way(
    warehouse_url, instance
):
    from flower_assets.defs.resources import PriceIndexSettings, WarehouseResource
    from flower_assets_tests.conftest import fresh_definitions

    definitions = fresh_definitions()
    sensor = definitions.defs.get_sensor_def("market_after_auctions")
    materialize(["2024-03-04", "2024-03-08"], warehouse_url, instance, range_run=True)

    def tick():
        context = dg.build_sensor_context(
            instance=instance,
            resources={
                "warehouse": WarehouseResource(url=warehouse_url),
                "price_index": PriceIndexSettings(),
            },
        )
        return sensor(context)

    (request,) = tick()
    assert request.tags["dagster/asset_partition_range_start"] == "2024-03-04"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-03-08"
    # While an auction run is under way, the sensor waits for it and says so.
    run = instance.create_run_for_job(
        definitions.defs.resolve_job_def("flower_auction_job"),
        status=dg.DagsterRunStatus.STARTED,
    )
    waiting = tick()
    assert isinstance(waiting, dg.SkipReason) and run.run_id in waiting.skip_message
    instance.report_run_failed(run)

    # A Materialize from the UI runs as __ASSET_JOB: the sensor waits for it too, naming the run
    # and the auction tables it writes. Runs that write neither (the report, the checks) do not
    # hold the build back.
    ui_run = instance.create_run_for_job(
        definitions.defs.resolve_implicit_global_asset_job_def(),
        asset_selection={dg.AssetKey("flowers"), dg.AssetKey("bidding_flowers")},
        status=dg.DagsterRunStatus.STARTED,
    )
    waiting = tick()
    assert isinstance(waiting, dg.SkipReason), waiting
    assert ui_run.run_id in waiting.skip_message
    assert "bidding_flowers, flowers" in waiting.skip_message
    instance.report_run_failed(ui_run)
    for job in ("flower_report_job", "flower_checks_job"):
        instance.create_run_for_job(
            definitions.defs.resolve_job_def(job), status=dg.DagsterRunStatus.STARTED
        )
    (request,) = tick()
    assert request.tags["dagster/asset_partition_range_start"] == "2024-03-04"

    build(warehouse_url, instance, [])
    assert "every market date is built" in tick().skip_message
