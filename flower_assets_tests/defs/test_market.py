"""The market layer through Dagster, on SQLite and PostgreSQL: built after the auction tables,
checked per date, and rebuilt for every later date a correction reaches."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.auction.checks import flower_auction_checks
from flower_assets.defs.market.assets import flower_market, market_inputs
from flower_assets.defs.market.checks import market_checks
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets.steps.market import market_dates
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    VARIETY_PRICE_CHANGES,
)
from flower_assets_tests.conftest import Market, item, materialize, resources_for
from flower_assets_tests.defs.test_checks import by_check

DAYS = ["2024-05-06", "2024-05-08", "2024-05-10", "2024-05-13"]
RED_PRICES = {
    "2024-05-06": 10_000,
    "2024-05-08": 12_000,
    "2024-05-10": 11_000,
    "2024-05-13": 11_500,
}


def rows(day: str, red: int) -> list[dict]:
    quantity = 10
    found = [
        item(
            day=day,
            good="레드",
            avg_amt=str(red),
            max_amt=str(red + 1000),
            min_amt=str(red - 1000),
            tot_amt=str(red * quantity),
            tot_qty=str(quantity),
        )
    ]
    if day in ("2024-05-08", "2024-05-10"):  # 국화 on consecutive dates: the chain mixes
        found.append(
            item(
                day=day,
                pum="국화",
                good="백마",
                grade="특",
                tot_qty="5",
                tot_amt="25000",
                avg_amt="5000",
                max_amt="6000",
                min_amt="4000",
            )
        )
    return found


@pytest.fixture
def market() -> Market:
    m = Market()
    for day, red in RED_PRICES.items():
        m.set(day, Category.CUT_FLOWERS, rows(day, red))
    return m


def run_selection(
    url: str, instance: dg.DagsterInstance, selection: dg.AssetSelection, first: str, last: str
) -> dg.ExecuteInProcessResult:
    """A job of the code location's assets and checks, selected, for the dates first..last."""
    job = dg.Definitions(
        assets=[*flower_auction_assets, market_inputs, flower_market],
        asset_checks=[*flower_auction_checks, *market_checks],
        jobs=[dg.define_asset_job("selected", selection=selection)],
        resources=resources_for(url),
    ).resolve_job_def("selected")
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


def build_market(url: str, instance: dg.DagsterInstance, first: str, last: str):
    """flower_market_job for first..last, as the sensor or the CLI launches it."""
    market = dg.AssetSelection.groups("flower_market", include_sources=True)
    return run_selection(url, instance, market, first, last)


def build_checks(url: str, instance: dg.DagsterInstance, first: str, last: str):
    """Only the market tables' checks, judged on what is stored (flower_checks_job)."""
    return run_selection(url, instance, dg.AssetSelection.checks(*market_checks), first, last)


def table(url: str, which) -> pl.DataFrame:
    with Warehouse.open(url) as wh:
        return wh.read_table(which)


def test_a_correction_rebuilds_its_date_and_every_later_date_it_reaches(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        materialize(DAYS, warehouse_url, instance, server.url, range_run=True)
        assert build_market(warehouse_url, instance, DAYS[0], DAYS[-1]).success
        items = table(warehouse_url, DAILY_ITEM_PRICES).filter(pl.col("name") == "장미")
        on = {
            d.isoformat(): r
            for d, r in zip(items["auction_date"], items.iter_rows(named=True), strict=True)
        }
        assert on["2024-05-10"]["prev_avg_price"] == 12_000
        assert on["2024-05-10"]["change_vs_prev"] == -1_000
        before_index = table(warehouse_url, CATEGORY_PRICE_INDEX).sort("auction_date")
        for name in ("reconciles_with_records",):
            assert all(by_check(instance, "daily_item_prices")[(name, d)] for d in DAYS)

        # Late settlement of 2024-05-08: 레드 특1 at 14,000 instead of 12,000.
        market.set("2024-05-08", Category.CUT_FLOWERS, rows("2024-05-08", 14_000))
        materialize(["2024-05-08"], warehouse_url, instance, server.url, refetch=True)

    # The records changed, the market tables not yet: their checks say so.
    with Warehouse.open(warehouse_url) as wh:
        rebuild = market_dates(wh, None, [])
    assert rebuild[0] == date(2024, 5, 8)
    assert rebuild[-1] == date(2024, 5, 13)  # every later date already built
    checks_only = build_checks(warehouse_url, instance, "2024-05-08", "2024-05-13")
    assert checks_only.success
    assert (
        by_check(instance, "daily_item_prices")[("reconciles_with_records", "2024-05-08")] is False
    )
    assert by_check(instance, "category_price_index")[("chain_consistent", "2024-05-10")] is True

    assert build_market(warehouse_url, instance, "2024-05-08", "2024-05-13").success
    items = table(warehouse_url, DAILY_ITEM_PRICES).filter(pl.col("name") == "장미")
    on = {
        d.isoformat(): r
        for d, r in zip(items["auction_date"], items.iter_rows(named=True), strict=True)
    }
    assert on["2024-05-08"]["avg_price"] == 14_000
    # The later date compares with the corrected price: a dependent date was rebuilt.
    assert (on["2024-05-10"]["prev_avg_price"], on["2024-05-10"]["change_vs_prev"]) == (
        14_000,
        -3_000,
    )
    changes = table(warehouse_url, VARIETY_PRICE_CHANGES).filter(
        (pl.col("variety_name") == "레드") & (pl.col("auction_date") == date(2024, 5, 10))
    )
    assert changes["prev_avg_price"].item() == 14_000
    after_index = table(warehouse_url, CATEGORY_PRICE_INDEX).sort("auction_date")
    # The chain moved from the corrected date on, not before it.
    assert after_index["index_value"][0] == before_index["index_value"][0]
    assert after_index["index_value"][1] != before_index["index_value"][1]
    assert after_index["index_value"][-1] != before_index["index_value"][-1]
    for name, asset in (
        ("reconciles_with_records", "daily_item_prices"),
        ("covers_every_record", "variety_price_changes"),
        ("chain_consistent", "category_price_index"),
    ):
        assert all(by_check(instance, asset)[(name, d)] for d in DAYS), name
