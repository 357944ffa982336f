"""Each asset's step for one auction date, without Dagster: compute, write, record, report."""

from __future__ import annotations

from datetime import date

from flower_assets.defs.resources import AtApiResource, WarehouseResource
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.cache import CachedApi
from flower_assets.source.categories import Category
from flower_assets.steps.normalizing import Masters, MasterStep, RecordsStep
from flower_assets.steps.raw import RawStep
from flower_assets.steps.report import Markdown
from flower_assets.warehouse.schemas import FLOWER_TYPES, FLOWERS
from flower_assets_tests.conftest import TEST_KEY, Market, item, tables

DAY = date(2024, 5, 10)


def test_the_steps_load_a_date_and_report_what_it_holds(tmp_path):
    market = Market()
    market.set(
        DAY.isoformat(),
        Category.CUT_FLOWERS,
        [item(good="레드"), item(good="화이트"), item(good="영", tot_qty="0")],
    )
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    with FakeAtServer(market.rows_for) as server:
        api = AtApiResource(service_key=TEST_KEY, base_url=server.url, max_attempts=1)
        with api.client() as client, WarehouseResource(url=url).open() as wh:
            raw = RawStep(wh, CachedApi(client, wh, 100, 3), [DAY], "run-1", 0.5, False, TEST_KEY)
            first, split = raw.load(DAY)
            assert first.metadata["dagster/row_count"] == 3
            assert first.metadata["rows_to_quarantine"] == 1
            assert first.metadata["api_calls"] == 4 and first.metadata["blocked_by"] == "none"
            assert split is not None and split.content_hash == first.metadata["content_hash"]
            assert (split.loadable.height, split.rejected.height) == (2, 1)

            items = MasterStep(wh, FLOWER_TYPES, "run-1", False, Masters(wh)).load(DAY, split)
            assert items.metadata["new_items"] == 1
            assert items.metadata["new_item_names"] == Markdown("장미")
            varieties = MasterStep(wh, FLOWERS, "run-1", False, Masters(wh)).load(DAY, split)
            assert varieties.metadata["new_varieties"] == 2
            records = RecordsStep(wh, "run-1", False, Masters(wh)).load(DAY, split)
            assert records.metadata["dagster/row_count"] == 2
            assert records.metadata["rejected_by_reason"] == {"non_positive_quantity": 1}
            assert any("quarantined" in text for _, text in records.messages)

            # The same content again: recorded, nothing rewritten.
            again = RecordsStep(wh, "run-2", False, Masters(wh)).load(DAY)
            assert again.metadata["content_changed"] is False
            assert again.metadata["dagster/row_count"] == 2
    assert tables(url)["bidding_flowers"].height == 2
