"""Sample mode is never silent and never mixes with the aT API's data in one warehouse."""

from __future__ import annotations

import json

import dagster as dg

from flower_assets.defs.resources import AtApiResource
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import (
    TEST_KEY,
    Market,
    fresh_definitions,
    item,
    latest_materializations,
    materialize,
    tables,
)

DAY = "2024-05-10"  # a sample day


def market() -> Market:
    live = Market()
    live.set(DAY, Category.CUT_FLOWERS, [item(good="라이브")])
    return live


def failure(result: dg.ExecuteInProcessResult) -> str:
    (event,) = [e for e in result.all_events if e.is_step_failure]
    return event.event_specific_data.error.to_string()


def test_a_partial_resource_override_keeps_the_key_and_url_from_the_environment(
    monkeypatch, tmp_path
):
    with FakeAtServer(market().rows_for) as server:
        monkeypatch.setenv("FLOWER_API_KEY", TEST_KEY)
        monkeypatch.setenv("FLOWER_API_BASE_URL", server.url)
        monkeypatch.setenv("FLOWER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.sqlite'}")
        assert not AtApiResource(page_size=50).sample_mode
        try:
            job = fresh_definitions().defs.resolve_job_def("flower_auction_job")
            with dg.DagsterInstance.ephemeral() as instance:
                result = job.execute_in_process(
                    instance=instance,
                    partition_key=DAY,
                    # What an operator tunes: only the page size, nothing about key or URL.
                    run_config={"resources": {"at_api": {"config": {"page_size": 50}}}},
                )
        finally:
            monkeypatch.undo()
            fresh_definitions()
        calls = len(server.requests)
    raw = latest_materializations(result, "public_bidding_flowers")[0].metadata
    assert raw["sample_mode"].value is False and calls == 4
    stored = tables(f"sqlite:///{tmp_path / 'w.sqlite'}")["public_bidding_flowers"]
    assert [json.loads(text)["goodName"] for text in stored["raw_item"]] == ["라이브"]


def test_live_rows_are_refused_in_a_sample_warehouse_and_nothing_is_written(
    warehouse_url, instance
):
    materialize([DAY], warehouse_url, instance)  # sample mode: no key, no server
    before = tables(warehouse_url)
    with FakeAtServer(market().rows_for) as server:
        (result,) = materialize([DAY], warehouse_url, instance, server.url, raise_on_error=False)
        calls = len(server.requests)
    assert not result.success and calls == 0
    said = failure(result)
    assert "holds sample data" in said and "would write aT API" in said
    assert "Nothing was fetched or written" in said and "FLOWER_DATABASE_URL" in said
    after = tables(warehouse_url)
    assert all(after[name].equals(before[name]) for name in before)


def test_sample_rows_are_refused_in_a_live_warehouse(warehouse_url, instance):
    with FakeAtServer(market().rows_for) as server:
        materialize([DAY], warehouse_url, instance, server.url)
    before = tables(warehouse_url)
    (result,) = materialize([DAY], warehouse_url, instance, raise_on_error=False)
    assert not result.success
    said = failure(result)
    assert "holds aT API" in said and "would write sample data" in said
    assert "FLOWER_API_KEY" in said
    after = tables(warehouse_url)
    assert all(after[name].equals(before[name]) for name in before)
