"""A re-fetch that changes a stored auction date: what changed is kept, and the masters follow.

Every change is recorded in auction_corrections (rows added, removed, and changed with their old
and new values), counted in the date's materialization metadata, and undoable: the superseded
answer can be rebuilt exactly. First and last seen dates always span the auction dates whose
records reference the item or variety.
"""

from __future__ import annotations

import sqlite3
from datetime import date

import dagster as dg
import polars as pl
import psycopg2
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets.transform import unchanged
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import CORRECTIONS, RAW, UPLOAD_LOGS
from flower_assets_tests.conftest import Market, item, materialize, tables
from flower_assets_tests.defs.test_checks import by_check

FIRST, DAY = "2024-05-08", "2024-05-10"


@pytest.fixture
def market() -> Market:
    m = Market()
    m.set(
        FIRST, Category.CUT_FLOWERS, [item(day=FIRST, good="레드"), item(day=FIRST, good="화이트")]
    )
    m.set(
        DAY,
        Category.CUT_FLOWERS,
        [
            item(good="레드"),
            item(good="화이트", grade="상1"),
            item(pum="국화", good="백마", grade="상2", avg_amt="7000"),
        ],
    )
    return m


def corrected(market: Market) -> None:
    """Late settlement of DAY: 국화 is withdrawn, 레드 re-priced, 화이트 gone, 핑크 new."""
    market.set(
        DAY,
        Category.CUT_FLOWERS,
        [item(good="레드", avg_amt="11000", tot_amt="550000"), item(good="핑크")],
    )


def query(url: str, sql: str) -> list[tuple]:
    """Rows of one SQL query, as a user runs it against the warehouse."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def seen(url: str, table: str) -> dict[str, tuple[date | None, date | None]]:
    frame = tables(url)[table]
    return {
        name: (first, last)
        for name, first, last in frame.select("name", "first_seen_date", "last_seen_date").rows()
    }


def test_a_correction_is_recorded_row_by_row_and_answers_in_one_query(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        materialize([FIRST, DAY], warehouse_url, instance, server.url)
        corrected(market)
        materialize([DAY], warehouse_url, instance, server.url, refetch=True)
        # The same answer again changes nothing and records nothing.
        materialize([DAY], warehouse_url, instance, server.url, refetch=True)

    # "Did the rose prices of DAY change after publication?": one query.
    answer = query(
        warehouse_url,
        "SELECT variety_name, grade, change, old_avg_price, new_avg_price"
        " FROM auction_corrections WHERE auction_date = '2024-05-10' AND item_name = '장미'"
        " ORDER BY variety_name",
    )
    with Warehouse.open(warehouse_url) as wh:
        corrections = wh.read_table(CORRECTIONS)
    assert answer == [
        ("레드", "특1", "changed", 10000, 11000),
        ("핑크", "특1", "added", None, 10000),
        ("화이트", "상1", "removed", 10000, None),
    ]
    withdrawn = corrections.filter(pl.col("item_name") == "국화").row(0, named=True)
    assert withdrawn["change"] == "removed" and withdrawn["old_avg_price"] == 7000
    assert '"goodName":"백마"' in withdrawn["old_raw_item"] and withdrawn["new_raw_item"] is None
    assert corrections.height == 4  # the unchanged third fetch added none
    assert corrections["auction_date"].unique().to_list() == [date.fromisoformat(DAY)]

    # Each run's latest materialization of the date: the one the UI shows for that run.
    by_run = {
        record.run_id: {k: v.value for k, v in record.asset_materialization.metadata.items()}
        for record in instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("public_bidding_flowers"), asset_partitions=[DAY]
            ),
            limit=10,
            ascending=True,
        ).records
    }
    shown = list(by_run.values())
    assert shown[0]["corrected_rows"] == 0  # the first answer for a date corrects nothing
    assert shown[1]["corrected_rows"] == 4
    assert shown[1]["corrections"] == {"added": 1, "removed": 2, "changed": 1}
    assert shown[2]["corrected_rows"] == 0


def test_the_superseded_answer_stays_recoverable(warehouse_url, instance, market):
    with FakeAtServer(market.rows_for) as server:
        materialize([DAY], warehouse_url, instance, server.url)
        corrected(market)
        materialize([DAY], warehouse_url, instance, server.url, refetch=True)
        market.set(DAY, Category.CUT_FLOWERS, [item(good="레드", tot_qty="60")])
        materialize([DAY], warehouse_url, instance, server.url, refetch=True)

    day = date.fromisoformat(DAY)
    with Warehouse.open(warehouse_url) as wh:
        hashes = wh.read_table(UPLOAD_LOGS).sort("id")["content_hash"].to_list()
        assert len(set(hashes)) == 3
        for content in hashes:
            answer = wh.answer_as_of(day, content)
            assert unchanged.content_hash(answer) == content
        current = wh.read_partition(RAW, day)
    assert unchanged.content_hash(current) == hashes[-1]


def test_seen_dates_follow_the_records_when_a_correction_removes_them(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        materialize([FIRST, DAY], warehouse_url, instance, server.url)
        first, day = date.fromisoformat(FIRST), date.fromisoformat(DAY)
        assert seen(warehouse_url, "flowers")["화이트"] == (first, day)
        corrected(market)
        materialize([DAY], warehouse_url, instance, server.url, refetch=True)
        varieties, items = seen(warehouse_url, "flowers"), seen(warehouse_url, "flower_types")
        assert varieties["화이트"] == (first, first)  # its last record moved back to FIRST
        assert varieties["레드"] == (first, day) and varieties["핑크"] == (day, day)
        # 국화 has no record left anywhere: it stays known (ids never change), seen on no date.
        assert varieties["백마"] == (None, None) and items["국화"] == (None, None)
        assert items["장미"] == (first, day)
        for asset in ("flowers", "flower_types"):
            assert by_check(instance, asset)[("seen_dates_match_records", DAY)] is True, asset

        # A correction that brings 국화 back: seen again, on that date.
        market.set(DAY, Category.CUT_FLOWERS, [item(pum="국화", good="백마", grade="상2")])
        materialize([DAY], warehouse_url, instance, server.url, refetch=True)
    varieties, items = seen(warehouse_url, "flowers"), seen(warehouse_url, "flower_types")
    assert varieties["백마"] == (day, day) and items["국화"] == (day, day)
    assert varieties["레드"] == (first, first) and items["장미"] == (first, first)
    for asset in ("flowers", "flower_types"):
        assert by_check(instance, asset)[("seen_dates_match_records", DAY)] is True, asset
