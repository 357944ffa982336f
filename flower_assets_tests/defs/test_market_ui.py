"""What the Dagster UI shows of the market layer, read through its GraphQL API: fresh after a
build, stale on every date a correction reaches once the new answer is observed, fresh again
after the rebuild; the index value plotted per date."""

from __future__ import annotations

import subprocess
from datetime import date

import dagster as dg
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import TEST_KEY, fresh_definitions, item
from flower_assets_tests.webui import (
    BIN,
    REPO,
    Ui,
    clean_env,
    embedded_home,
    statuses_by_date,
    webserver,
)

DAYS = ["2024-05-06", "2024-05-08", "2024-05-10", "2024-05-13"]
MARKET = ("daily_item_prices", "variety_price_changes", "category_price_index")


def answer(prices: dict[str, int]):
    def rows_for(day: date, category: Category) -> list[dict]:
        key = day.isoformat()
        if category is not Category.CUT_FLOWERS or key not in prices:
            return []
        red = prices[key]
        return [
            item(
                day=key,
                good="레드",
                avg_amt=str(red),
                max_amt=str(red + 500),
                min_amt=str(red - 500),
                tot_amt=str(red * 10),
                tot_qty="10",
            ),
            item(
                day=key,
                good="화이트",
                avg_amt="9000",
                tot_amt="90000",
                tot_qty="10",
                max_amt="9500",
                min_amt="8500",
            ),
        ]

    return rows_for


MARKET_CHECKS = {
    "daily_item_prices": ["built_on_current_history", "reconciles_with_records"],
    "variety_price_changes": ["built_on_current_history", "covers_every_record"],
    "category_price_index": [
        "built_on_current_history",
        "chain_consistent",
        "links_rest_on_enough_volume",
    ],
}


def assert_checks_passed(ui: Ui) -> None:
    """Every market check shows Passed on every date, as its Partitions view reads it."""
    for asset, names in MARKET_CHECKS.items():
        checks = ui.checks(asset)
        for name in names:
            shown = statuses_by_date(checks[name])
            assert {d: shown.get(d) for d in DAYS} == dict.fromkeys(DAYS, "SUCCEEDED"), name


def run_range(job: dg.JobDefinition, instance, first: str, last: str, **kwargs) -> None:
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        **kwargs,
    )
    assert result.success


@pytest.mark.slow
def test_the_ui_shows_the_market_dates_a_correction_reaches_as_stale_until_rebuilt(
    tmp_path, monkeypatch
):
    home = embedded_home(tmp_path / "dagster_home")
    prices = {
        "2024-05-06": 10_000,
        "2024-05-08": 12_000,
        "2024-05-10": 11_000,
        "2024-05-13": 11_500,
    }
    with FakeAtServer(answer(prices)) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
            FLOWER_START_DATE="2024-04-01",
        )
        done = subprocess.run(
            [BIN / "flower-assets", "materialize", "--from", DAYS[0], "--to", DAYS[-1]],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        defs = fresh_definitions().defs
        with dg.DagsterInstance.get() as instance, webserver(env, tmp_path / "web.log") as ui:
            for asset in MARKET:
                for day in DAYS:
                    assert ui.stale_status(asset, day) == "FRESH", (asset, day)
            assert_checks_passed(ui)
            shown = ui.materialization_metadata("category_price_index", "2024-05-10")
            assert isinstance(shown["index_절화"], float)

            # Late settlement of 2024-05-08, re-fetched by the auction job alone.
            prices["2024-05-08"] = 14_000
            auction = defs.resolve_job_def("flower_auction_job")
            run_range(
                auction,
                instance,
                "2024-05-08",
                "2024-05-08",
                run_config={"ops": {"flower_auction": {"config": {"refetch": True}}}},
            )
            market = defs.resolve_job_def("flower_market_job")
            # The market job's first step observes the stored answers: from then on the UI
            # shows every market date the correction reaches as stale, the earlier one fresh.
            run_range(
                market,
                instance,
                "2024-05-08",
                "2024-05-13",
                asset_selection=[dg.AssetKey("market_inputs")],
            )
            for asset in MARKET:
                assert ui.stale_status(asset, "2024-05-06") == "FRESH", asset
                for day in DAYS[1:]:
                    assert ui.stale_status(asset, day) == "STALE", (asset, day)
            run_range(market, instance, "2024-05-08", "2024-05-13")
            for asset in MARKET:
                for day in DAYS:
                    assert ui.stale_status(asset, day) == "FRESH", (asset, day)
            assert_checks_passed(ui)

            # An earlier date arrives after the later ones were built: every later date's
            # history changed (the previous auction date, the index's base and chain).
            prices["2024-05-03"] = 9_000
            run_range(auction, instance, "2024-05-03", "2024-05-03")
            run_range(
                market,
                instance,
                "2024-05-06",
                "2024-05-13",
                asset_selection=[dg.AssetKey("market_inputs")],
            )
            for asset in MARKET:
                for day in DAYS:
                    assert ui.stale_status(asset, day) == "STALE", (asset, day)
            checks = defs.resolve_job_def("flower_checks_job")
            run_range(checks, instance, "2024-05-06", "2024-05-13")
            history = statuses_by_date(
                ui.checks("category_price_index")["built_on_current_history"]
            )
            assert {d: history.get(d) for d in DAYS} == dict.fromkeys(DAYS, "FAILED")
            run_range(market, instance, "2024-05-03", "2024-05-13")
            for asset in MARKET:
                for day in DAYS:
                    assert ui.stale_status(asset, day) == "FRESH", (asset, day)
            assert_checks_passed(ui)
