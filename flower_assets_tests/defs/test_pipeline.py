"""The four assets materialized in-process on a real Dagster instance, on SQLite and PostgreSQL."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from flower_assets.definitions import defs
from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import (
    TEST_KEY,
    Market,
    item,
    latest_materializations,
    materialize,
    resources_for,
    tables,
)

DATES = ["2024-05-08", "2024-05-09", "2024-05-10"]


@pytest.fixture
def market() -> Market:
    m = Market()
    m.set(
        "2024-05-08",
        Category.CUT_FLOWERS,
        [
            item(day="2024-05-08", good=g, grade=gr)
            for g in ("레드", "화이트")
            for gr in ("특1", "상1")
        ],
    )
    m.set(
        "2024-05-09",
        Category.FOLIAGE,
        [item(day="2024-05-09", gubn="관엽", pum="몬스테라", good="델리시오사", grade="특")],
    )
    m.set(
        "2024-05-10",
        Category.CUT_FLOWERS,
        [item(good="레드"), item(pum="국화", good="백마", grade="상2")],
    )
    m.set(
        "2024-05-10", Category.ORCHIDS, [item(gubn="난", pum="호접란", good="만천홍", grade="특")]
    )
    # 2024-05-11 is a no-auction day: every category answers with no rows.
    return m


def by_name(t: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The tables with ids replaced by the names they stand for."""
    items = t["flower_types"].rename({"id": "flower_type_id", "name": "item"})
    varieties = t["flowers"].join(
        items.select("flower_type_id", "flower_gubn", "item"), on="flower_type_id"
    )
    records = t["bidding_flowers"].join(
        varieties.select(
            pl.col("id").alias("flower_id"), "flower_gubn", "item", pl.col("name").alias("variety")
        ),
        on="flower_id",
    )
    frames = {
        "public_bidding_flowers": t["public_bidding_flowers"],
        "rejected_bidding_flowers": t["rejected_bidding_flowers"],
        "flower_types": items.drop("flower_type_id"),
        "flowers": varieties.drop("id", "flower_type_id"),
        "bidding_flowers": records.drop("flower_id"),
    }
    return {name: frame.sort(frame.columns) for name, frame in frames.items()}


def assert_referential_integrity(t: dict[str, pl.DataFrame]) -> None:
    assert (
        t["flowers"]
        .join(t["flower_types"], left_on="flower_type_id", right_on="id", how="anti")
        .height
        == 0
    )
    assert (
        t["bidding_flowers"]
        .join(t["flowers"], left_on="flower_id", right_on="id", how="anti")
        .height
        == 0
    )
    assert (
        t["bidding_flowers"].select("auction_date", "flower_id", "grade").is_duplicated().sum() == 0
    )
    assert t["flower_types"].select("flower_gubn", "name").is_duplicated().sum() == 0
    assert t["flowers"].select("flower_type_id", "name").is_duplicated().sum() == 0


def test_sample_mode_fills_all_four_tables_and_says_so(warehouse_url, instance):
    (result,) = materialize(["2024-05-10"], warehouse_url, instance)
    raw_meta = latest_materializations(result, "public_bidding_flowers")[0].metadata
    assert raw_meta["sample_mode"].value is True
    assert raw_meta["api_calls"].value == 4
    per_category = raw_meta["rows_per_category"].value
    assert per_category["절화"] > 1000 and per_category["난"] > 0 and per_category["춘란"] > 0
    t = tables(warehouse_url)
    assert raw_meta["dagster/row_count"].value == t["public_bidding_flowers"].height
    assert (
        t["bidding_flowers"].height + t["rejected_bidding_flowers"].height
        == t["public_bidding_flowers"].height
    )
    assert set(t["flower_types"]["flower_gubn"]) == {"절화", "난", "춘란"}
    assert_referential_integrity(t)
    logs = instance.all_logs(result.run_id)
    assert any("Sample mode" in (e.user_message or "") for e in logs)


def test_live_partitions_via_http_then_rematerialized_give_identical_tables(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        results = materialize(DATES, warehouse_url, instance, server.url)
        first = tables(warehouse_url)
        assert len(server.requests) == 4 * len(DATES)  # one call per category per day
        materialize(DATES, warehouse_url, instance, server.url, refetch=True)
    assert all(r.success for r in results)
    meta = latest_materializations(results[2], "public_bidding_flowers")[0].metadata
    assert meta["sample_mode"].value is False and meta["dagster/row_count"].value == 3
    assert meta["rows_per_category"].value == {"절화": 2, "관엽": 0, "난": 1, "춘란": 0}
    types_meta = latest_materializations(results[0], "flower_types")[0].metadata
    assert types_meta["new_items"].value == 1
    assert_referential_integrity(first)
    assert (
        first["bidding_flowers"].height == 8
        and first["flower_types"].height == 4
        and first["flowers"].height == 5
    )
    again = tables(warehouse_url)
    assert all(again[name].equals(first[name]) for name in first)


def test_a_range_run_gives_the_same_tables_as_one_run_per_date(
    warehouse_url, instance, market, tmp_path
):
    with FakeAtServer(market.rows_for) as server:
        (result,) = materialize(DATES, warehouse_url, instance, server.url, range_run=True)
        assert result.success and len(server.requests) == 4 * len(DATES)
    ranged = tables(warehouse_url)
    per_date_url = f"sqlite:///{tmp_path / 'per_date.sqlite'}"
    with FakeAtServer(market.rows_for) as server:
        materialize(DATES, per_date_url, instance, server.url)
    per_date = tables(per_date_url)
    # Ids depend on the order items were first met; the content behind them must not.
    for name, frame in by_name(ranged).items():
        assert frame.equals(by_name(per_date)[name]), name


def test_normalizing_from_the_raw_steps_split_equals_reading_raw_back(
    warehouse_url, instance, market, tmp_path
):
    # A rejected row too, so both halves of the split travel from the raw step.
    market.set(
        "2024-05-09",
        Category.CUT_FLOWERS,
        [item(day="2024-05-09", good="레드"), item(day="2024-05-09", good="핑크", tot_qty="0")],
    )
    raw = dg.AssetSelection.assets("public_bidding_flowers")
    downstream = dg.AssetSelection.assets("flower_types", "flowers", "bidding_flowers")
    with FakeAtServer(market.rows_for) as server:
        # A share of rejected rows above the default 1% would block the normalizing steps.
        (together,) = materialize(
            DATES, warehouse_url, instance, server.url, range_run=True, max_rejected_share=1.0
        )
        assert together.success
        apart_url = f"sqlite:///{tmp_path / 'apart.sqlite'}"
        resources = resources_for(apart_url, server.url, max_rejected_share=1.0)
        tags = {
            "dagster/asset_partition_range_start": DATES[0],
            "dagster/asset_partition_range_end": DATES[-1],
        }
        assert dg.materialize(
            flower_auction_assets, selection=raw, resources=resources, instance=instance, tags=tags
        ).success
    # The normalizing tables alone (the UI's Materialize on them): they read the raw rows back.
    assert dg.materialize(
        flower_auction_assets,
        selection=downstream,
        resources=resources,
        instance=instance,
        tags=tags,
    ).success
    assert tables(apart_url)["rejected_bidding_flowers"].height == 1
    for name, frame in by_name(tables(warehouse_url)).items():
        assert frame.equals(by_name(tables(apart_url))[name]), name


def test_no_auction_day_succeeds_with_no_rows_and_leaves_other_dates_alone(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        materialize(["2024-05-10"], warehouse_url, instance, server.url)
        before = tables(warehouse_url)
        (result,) = materialize(["2024-05-11"], warehouse_url, instance, server.url)
    assert result.success
    meta = latest_materializations(result, "public_bidding_flowers")[0].metadata
    assert meta["dagster/row_count"].value == 0 and meta["api_calls"].value == 4
    assert all(tables(warehouse_url)[k].equals(before[k]) for k in before)


def test_a_correction_replaces_the_partition_and_masters_keep_their_ids(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        materialize(["2024-05-10"], warehouse_url, instance, server.url)
        before = tables(warehouse_url)
        # Late settlement: 국화 disappears, 장미 is re-priced, a new variety shows up.
        market.set(
            "2024-05-10",
            Category.CUT_FLOWERS,
            [item(good="레드", avg_amt="11000"), item(good="핑크")],
        )
        materialize(["2024-05-10"], warehouse_url, instance, server.url, refetch=True)
    after = tables(warehouse_url)
    assert after["bidding_flowers"].height == 3  # 레드, 핑크, 만천홍: no leftovers of 국화
    assert 11000 in after["bidding_flowers"]["avg_price"].to_list()
    # Masters only grow: 국화 stays known with its id; old ids are unchanged.
    assert (
        before["flower_types"].join(after["flower_types"], on=["id", "flower_gubn", "name"]).height
        == before["flower_types"].height
    )
    assert (
        before["flowers"].select("id", "name").join(after["flowers"], on=["id", "name"]).height
        == before["flowers"].height
    )
    assert_referential_integrity(after)


def test_a_failing_category_fails_the_run_and_keeps_the_previous_partition(
    warehouse_url, instance, market
):
    with FakeAtServer(market.rows_for) as server:
        materialize(["2024-05-10"], warehouse_url, instance, server.url)
    before = tables(warehouse_url)

    def orchids_down(params, _number):
        return Reply(status=503, body=b"down") if params.get("flowerGubn") == "3" else None

    market.set("2024-05-10", Category.CUT_FLOWERS, [item(good="바뀐값")])
    with FakeAtServer(market.rows_for, fault=orchids_down) as server:
        (result,) = materialize(
            ["2024-05-10"], warehouse_url, instance, server.url, raise_on_error=False, refetch=True
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.to_string()
    assert (
        "2024-05-10" in message
        and "난" in message
        and "HTTP 503" in message
        and TEST_KEY not in message
    )
    assert all(tables(warehouse_url)[k].equals(before[k]) for k in before)


def test_definitions_load_with_column_schemas_for_every_table():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    for key in ("public_bidding_flowers", "flower_types", "flowers", "bidding_flowers"):
        node = graph.get(dg.AssetKey(key))
        schema = node.metadata["dagster/column_schema"]
        assert schema.columns and all(c.description for c in schema.columns)
        assert node.partitions_def.timezone == "Asia/Seoul"
        assert node.group_name == "flower_auction"
