"""Integrity through Dagster: quarantine, partitioned check results, blocking, batch logs."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.auction.checks import bidding_checks, raw_checks
from flower_assets.quality import catalog
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.categories import Category
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import BIDDING, PROCESS_LOGS, UPLOAD_LOGS
from flower_assets_tests.conftest import (
    TEST_KEY,
    Market,
    item,
    materialize,
    refetch_config,
    resources_for,
    tables,
)

DAY = "2024-05-10"


def evaluations(instance: dg.DagsterInstance) -> list:
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
        ascending=True,
    )
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


def by_check(instance: dg.DagsterInstance, asset: str) -> dict[tuple[str, str | None], bool]:
    return {
        (e.check_name, e.partition): e.passed
        for e in evaluations(instance)
        if e.asset_key == dg.AssetKey(asset)
    }


def materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return {partition for partition in instance.get_materialized_partitions(dg.AssetKey(asset))}


BAD_ROWS = {
    "non_numeric_amount": item(good="숫자아님", tot_amt="abc"),
    "negative_amount": item(good="음수", min_amt="-100"),
    "empty_name": item(good=""),
    "wrong_sale_date": item(good="다른날", day="2024-05-09"),
    "min_above_max": item(good="역전", min_amt="20000", max_amt="100"),
    "non_positive_quantity": item(good="영", tot_qty="0"),
    "duplicate_key": item(good="중복", avg_amt="10000"),
}


def market_with(bad: list[dict], good: int) -> Market:
    market = Market()
    rows = [
        item(good=f"정상{i:03d}", tot_qty=str(1000 - i), tot_amt=str(10_000 * (1000 - i)))
        for i in range(good)
    ]
    market.set(DAY, Category.CUT_FLOWERS, rows + bad)
    return market


def test_each_bad_row_kind_is_quarantined_with_its_reason_and_reconciles(warehouse_url, instance):
    bad = [*BAD_ROWS.values(), item(good="중복", avg_amt="10001")]
    # With 800 good rows the 8 bad ones are 1 %: at the default threshold, downstream still runs.
    with FakeAtServer(market_with(bad, good=792).rows_for) as server:
        (result,) = materialize([DAY], warehouse_url, instance, server.url)
    assert result.success
    t = tables(warehouse_url)
    rejected = t["rejected_bidding_flowers"]
    reasons = {
        json.loads(r)["goodName"]: reason
        for r, reason in rejected.select("raw_item", "reason").rows()
    }
    assert reasons == {
        json.loads(json.dumps(row))["goodName"]: kind for kind, row in BAD_ROWS.items()
    }
    assert rejected.height == 8 and rejected["reason_text"].str.len_chars().min() > 10
    loaded_varieties = set(t["flowers"]["name"])
    assert not loaded_varieties & {"숫자아님", "음수", "다른날", "역전", "영", "중복"}
    assert t["bidding_flowers"].height == 792
    assert t["public_bidding_flowers"].height == 800  # the raw layer keeps every row
    checks = by_check(instance, "bidding_flowers")
    assert checks[("reconciles_with_raw", DAY)] is True
    assert checks[("prices_ordered", DAY)] is True and checks[("totals_consistent", DAY)] is True
    raw_checks = by_check(instance, "public_bidding_flowers")
    assert raw_checks[("rejected_share_within_threshold", DAY)] is True
    assert raw_checks[("no_duplicate_keys", DAY)] is False
    assert raw_checks[("dates_match_partition", DAY)] is False
    assert raw_checks[("schema_conforms", DAY)] is True


def test_raw_checks_report_the_raw_steps_judgement_and_a_later_run_judges_again(
    warehouse_url, instance
):
    bad = [*BAD_ROWS.values(), item(good="중복", avg_amt="10001")]
    with FakeAtServer(market_with(bad, good=792).rows_for) as server:
        (fetched,) = materialize([DAY], warehouse_url, instance, server.url)
    with Warehouse.open(warehouse_url) as wh:
        (judged,) = wh.read_table(UPLOAD_LOGS)["raw_checks"]
    assert json.loads(judged)["no_duplicate_keys"]["passed"] is False  # kept with the answer

    def shown(run_id: str) -> dict[str, tuple[bool, str | None, dict]]:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        found = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        return {
            e.check_name: (e.passed, e.description, {k: v.value for k, v in e.metadata.items()})
            for e in found
            if e.asset_key == dg.AssetKey("public_bidding_flowers")
        }

    # A checks-only run (another run than the fetching one) decodes and judges the stored rows.
    again = (
        dg.Definitions(
            assets=flower_auction_assets,
            asset_checks=[raw_checks],
            jobs=[dg.define_asset_job("recheck", selection=dg.AssetSelection.checks(raw_checks))],
            resources=resources_for(warehouse_url),
        )
        .resolve_job_def("recheck")
        .execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": DAY,
                "dagster/asset_partition_range_end": DAY,
            },
        )
    )
    assert again.success
    assert len(shown(fetched.run_id)) == len(catalog.RAW_CHECKS)
    assert shown(again.run_id) == shown(fetched.run_id)


def metadata(instance: dg.DagsterInstance, asset: str, day: str) -> dict[str, object]:
    """The latest materialization's metadata of one asset and date, as plain values."""
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]), limit=1
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def upload_statuses(url: str) -> list[tuple[str, str | None]]:
    with Warehouse.open(url) as wh:
        logs = wh.read_table(UPLOAD_LOGS).sort("id")
    return list(logs.select("status", "error_text").rows())


def test_rejected_share_over_the_threshold_blocks_the_date_downstream(warehouse_url, instance):
    with FakeAtServer(
        market_with([item(good="x", tot_qty="-1"), item(good="y", tot_qty="n/a")], good=10).rows_for
    ) as server:
        (result,) = materialize([DAY], warehouse_url, instance, server.url, raise_on_error=False)
    # The check fails and the date stays out of the normalized tables; the run, asked for a
    # date it could not load, ends failed naming it.
    assert not result.success
    assert by_check(instance, "bidding_flowers")[("auction_date_loaded", DAY)] is False
    assert (
        by_check(instance, "public_bidding_flowers")[("rejected_share_within_threshold", DAY)]
        is False
    )
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(
        f"{DAY}: not loaded into the normalized tables" in m and "2 of 12 rows rejected" in m
        for m in logged
    )
    t = tables(warehouse_url)
    assert t["public_bidding_flowers"].height == 12 and t["bidding_flowers"].height == 0
    ((status, why),) = upload_statuses(warehouse_url)
    assert status == "blocked" and "rejected_share_within_threshold" in why
    shown = metadata(instance, "bidding_flowers", DAY)
    assert shown["dagster/row_count"] == 0 and shown["content_changed"] is False
    assert "rejected_share_within_threshold" in shown["blocked_by"]
    assert shown["raw_content_hash"].startswith("none")


def test_schema_drift_blocks_the_date_and_keeps_its_previous_version(warehouse_url, instance):
    good = Market()
    good.set(DAY, Category.CUT_FLOWERS, [item(good="레드"), item(good="화이트")])
    drifted = [
        {k: v for k, v in item(good=f"v{i}").items() if k != "lvNm"} | {"lv": "특1"}
        for i in range(5)
    ]
    bad = Market()
    bad.set(DAY, Category.ORCHIDS, [item(gubn="난", pum="호접란", good="만천홍", grade="특")])
    bad.set(DAY, Category.CUT_FLOWERS, drifted)
    with FakeAtServer(good.rows_for) as server:
        materialize([DAY], warehouse_url, instance, server.url)
    before = tables(warehouse_url)
    with FakeAtServer(bad.rows_for) as server:
        (result,) = materialize(
            [DAY], warehouse_url, instance, server.url, refetch=True, raise_on_error=False
        )
    assert not result.success  # the date asked for is not loaded
    schema = by_check(instance, "public_bidding_flowers")[("schema_conforms", DAY)]
    assert schema is False
    drift = [e for e in evaluations(instance) if e.check_name == "schema_conforms"][-1]
    assert "field lvNm missing in 5 of 6 items" in drift.metadata["summary"].value
    assert "unexpected field lv" in drift.metadata["summary"].value
    after = tables(warehouse_url)
    assert after["public_bidding_flowers"].height == 6  # raw keeps what came, verbatim
    for name in ("flower_types", "flowers", "bidding_flowers"):
        assert after[name].equals(before[name]), name
    shown = metadata(instance, "bidding_flowers", DAY)
    assert shown["dagster/row_count"] == 2 and "schema_conforms" in shown["blocked_by"]
    # What the date's records stand for: the earlier raw content, now reconciled against new raw.
    assert by_check(instance, "bidding_flowers")[("reconciles_with_raw", DAY)] is False


def test_checks_of_a_range_run_are_recorded_per_auction_date(warehouse_url, instance):
    market = Market()
    for day in ("2024-05-08", "2024-05-09", "2024-05-10"):
        market.set(day, Category.CUT_FLOWERS, [item(day=day), item(day=day, good="b")])
    with FakeAtServer(market.rows_for) as server:
        (result,) = materialize(
            ["2024-05-08", "2024-05-09", "2024-05-10"],
            warehouse_url,
            instance,
            server.url,
            range_run=True,
        )
    assert result.success
    checks = by_check(instance, "bidding_flowers")
    for day in ("2024-05-08", "2024-05-09", "2024-05-10"):
        assert checks[("reconciles_with_raw", day)] is True
        assert checks[("prices_ordered", day)] is True
        assert by_check(instance, "flowers")[("seen_dates_match_records", day)] is True
    # One evaluation per check and date, and none without a date.
    assert all(e.partition for e in evaluations(instance))


def test_price_anomaly_and_a_silent_trading_day_warn_after_a_normal_history(
    warehouse_url, instance
):
    fridays = [date(2024, 3, 1) + timedelta(weeks=w) for w in range(10)]  # 2024-03-01 … 2024-05-03
    market = Market()
    for n, friday in enumerate(fridays):
        price = str(10_000 + (n % 3) * 100)
        market.set(
            friday.isoformat(),
            Category.CUT_FLOWERS,
            [
                item(
                    day=friday.isoformat(),
                    avg_amt=price,
                    min_amt="9000",
                    max_amt="50000",
                    tot_amt=str(int(price) * 50),
                )
            ],
        )
        market.set(
            friday.isoformat(),
            Category.ORCHIDS,
            [item(day=friday.isoformat(), gubn="난", pum="호접란", good="만천홍", grade="특")],
        )
    # 2024-05-10: cut flowers are silent on a Friday; orchids trade at four times their usual price.
    market.set(
        DAY,
        Category.ORCHIDS,
        [
            item(
                gubn="난",
                pum="호접란",
                good="만천홍",
                grade="특",
                avg_amt="40000",
                max_amt="45000",
                tot_amt="2000000",
            )
        ],
    )
    with FakeAtServer(market.rows_for) as server:
        (result,) = materialize(
            ["2024-03-01", DAY], warehouse_url, instance, server.url, range_run=True
        )
    assert result.success  # WARN checks never fail a run
    raw_checks = by_check(instance, "public_bidding_flowers")
    assert raw_checks[("expected_auction_day", DAY)] is False
    assert raw_checks[("expected_auction_day", "2024-05-03")] is True
    bidding = by_check(instance, "bidding_flowers")
    assert bidding[("price_anomalies", DAY)] is False
    assert all(bidding[("price_anomalies", f.isoformat())] for f in fridays)
    anomaly = next(
        e for e in evaluations(instance) if e.check_name == "price_anomalies" and e.partition == DAY
    )
    assert anomaly.severity == dg.AssetCheckSeverity.WARN
    assert "만천홍" in anomaly.metadata["sample"].value


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_batch_logs_are_written_on_success_and_on_failure(warehouse_url, instance, outcome):
    market = Market()
    market.set(DAY, Category.CUT_FLOWERS, [item(), item(good="b"), item(good="c", tot_qty="0")])

    def orchids_down(params, _number):
        return (
            Reply(status=503, body=b"down")
            if outcome == "failure" and params.get("flowerGubn") == "3"
            else None
        )

    with FakeAtServer(market.rows_for, fault=orchids_down) as server:
        (result,) = materialize(
            [DAY], warehouse_url, instance, server.url, raise_on_error=False, max_rejected_share=0.5
        )
    with Warehouse.open(warehouse_url) as wh:
        uploads, processes = wh.read_table(UPLOAD_LOGS), wh.read_table(PROCESS_LOGS)
    assert uploads.height == 1
    upload = uploads.row(0, named=True)
    assert upload["run_id"] == result.run_id and upload["auction_date"] == date(2024, 5, 10)
    assert upload["finished_at"] >= upload["started_at"]
    if outcome == "success":
        assert result.success
        assert (
            upload["status"],
            upload["items_received"],
            upload["items_loaded"],
            upload["items_rejected"],
            upload["api_calls"],
        ) == ("success", 3, 2, 1, 4)
        assert upload["error_text"] is None
        assert sorted(processes["asset"]) == ["bidding_flowers", "flower_types", "flowers"]
        assert set(processes["status"]) == {"success"}
        by_asset = {r["asset"]: r for r in processes.iter_rows(named=True)}
        assert (
            by_asset["flower_types"]["new_items"] == 1 and by_asset["flowers"]["new_varieties"] == 2
        )
        assert by_asset["bidding_flowers"]["auction_rows_affected"] == 2
    else:
        assert not result.success
        assert upload["status"] == "failed" and upload["api_calls"] == 1 + 1 + 2  # 난 tried twice
        assert "HTTP 503" in upload["error_text"] and "난" in upload["error_text"]
        assert TEST_KEY not in upload["error_text"]
        assert processes.height == 0


def test_records_wait_for_the_masters_to_load_the_same_answer(warehouse_url, instance):
    market = Market()
    market.set(DAY, Category.CUT_FLOWERS, [item()])
    with FakeAtServer(market.rows_for) as server:
        assert materialize([DAY], warehouse_url, instance, server.url)[0].success
        market.set(DAY, Category.CUT_FLOWERS, [item(good="새품종")])
        # Re-run raw and records but skip the masters: the new variety has no id yet.
        result = dg.materialize(
            [*flower_auction_assets, bidding_checks],
            selection=dg.AssetSelection.assets("public_bidding_flowers", "bidding_flowers")
            | dg.AssetSelection.checks(bidding_checks),
            partition_key=DAY,
            instance=instance,
            resources=resources_for(warehouse_url, server.url),
            run_config=refetch_config(),
            raise_on_error=False,
        )
    # The records keep their previous version instead of half a date, and the run, which
    # could not load the date, ends failed saying why.
    assert not result.success
    with Warehouse.open(warehouse_url) as wh:
        processes = wh.read_table(PROCESS_LOGS).filter(pl.col("run_id") == result.run_id)
        records = wh.read_partition(BIDDING, date.fromisoformat(DAY))
    assert processes.height == 0
    assert records.height == 1
    shown = metadata(instance, "bidding_flowers", DAY)
    assert shown["blocked_by"] == "flower_types has not loaded the date's answer"
    assert shown["content_changed"] is False
    cause = by_check(instance, "bidding_flowers")
    assert cause[("auction_date_loaded", DAY)] is False
