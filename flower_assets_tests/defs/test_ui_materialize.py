"""The UI's Materialize on auction assets, read back through the webserver's GraphQL API.

What the UI's Materialize button sends (`__ASSET_JOB`, the chosen assets with their checks, a
`dagster/partition` tag) for a date whose content did not change leaves that asset and
everything downstream fresh, whatever subset was chosen; a real change marks the market tables
stale until `market_after_auctions` has them rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from contextlib import contextmanager

import dagster as dg
import pytest

from flower_assets.quality.catalog import (
    BIDDING_CHECKS,
    CATEGORY_PRICE_INDEX_CHECKS,
    DAILY_ITEM_PRICES_CHECKS,
    FLOWER_TYPES_CHECKS,
    FLOWERS_CHECKS,
    RAW_CHECKS,
    VARIETY_PRICE_CHANGES_CHECKS,
)
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets_tests.conftest import TEST_KEY, fresh_definitions
from flower_assets_tests.defs.test_market_ui import DAYS, MARKET, answer, run_range
from flower_assets_tests.webui import (
    BIN,
    LOCATION,
    REPO,
    REPOSITORY,
    Ui,
    clean_env,
    embedded_home,
    statuses_by_date,
    webserver,
)

pytestmark = pytest.mark.slow

AUCTION = ("public_bidding_flowers", "flower_types", "flowers", "bidding_flowers")
CHECKS = dict(
    zip(AUCTION, (RAW_CHECKS, FLOWER_TYPES_CHECKS, FLOWERS_CHECKS, BIDDING_CHECKS), strict=True)
)
DAY = DAYS[1]


def materialize_from_ui(ui: Ui, assets: list[str], day: str, run_config: dict | None = None) -> str:
    """What the UI's Materialize sends for one date: `__ASSET_JOB`, the assets and their checks."""
    data = ui.query(
        """mutation($params: ExecutionParams!) {
          launchPipelineExecution(executionParams: $params) {
            __typename ... on LaunchRunSuccess { run { runId } }
            ... on PythonError { message } ... on InvalidSubsetError { message }
            ... on RunConfigValidationInvalid { errors { message } } } }""",
        params={
            "mode": "default",
            "runConfigData": json.dumps(run_config or {}),
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": [a]} for a in assets],
                "assetCheckSelection": [
                    {"assetKey": {"path": [a]}, "name": check.name}
                    for a in assets
                    for check in CHECKS[a]
                ],
            },
        },
    )
    launched = data["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert ui.wait_for_run(run_id, timeout_s=300) == "SUCCESS", run_id
    return run_id


def statuses(ui: Ui, assets: tuple[str, ...], days: list[str]) -> dict[tuple[str, str], str]:
    return {(asset, day): ui.stale_status(asset, day) for asset in assets for day in days}


def all_fresh(assets: tuple[str, ...], days: list[str]) -> dict[tuple[str, str], str]:
    return {(asset, day): "FRESH" for asset in assets for day in days}


def test_materialize_from_the_ui_leaves_unchanged_dates_fresh_and_real_changes_stale(
    tmp_path, monkeypatch
):
    home = embedded_home(tmp_path / "dagster_home")
    prices = {"2024-05-06": 10_000, "2024-05-08": 12_000, "2024-05-10": 11_000}
    prices["2024-05-13"] = 11_500
    with FakeAtServer(answer(prices)) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
            FLOWER_START_DATE="2024-04-01",
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        defs = fresh_definitions().defs
        with dg.DagsterInstance.get() as instance, webserver(env, tmp_path / "web.log") as ui:
            # The full load and the market build in ranged runs, as the CLI and backfills run them.
            run_range(defs.resolve_job_def("flower_auction_job"), instance, DAYS[0], DAYS[-1])
            run_range(defs.resolve_job_def("flower_market_job"), instance, DAYS[0], DAYS[-1])
            everything = AUCTION + MARKET
            assert statuses(ui, everything, DAYS) == all_fresh(everything, DAYS)

            # One asset, a subset, the first asset alone, all four: nothing changed, all fresh.
            for assets in (
                ["bidding_flowers"],
                ["flowers", "bidding_flowers"],
                ["public_bidding_flowers"],
                list(AUCTION),
            ):
                materialize_from_ui(ui, assets, DAY)
                assert statuses(ui, everything, DAYS) == all_fresh(everything, DAYS), assets

            # A real change: the source corrects the date, the UI re-fetches it.
            prices[DAY] = 14_000
            materialize_from_ui(
                ui,
                list(AUCTION),
                DAY,
                {"ops": {"flower_auction": {"config": {"refetch": True}}}},
            )
            assert statuses(ui, AUCTION, DAYS) == all_fresh(AUCTION, DAYS)
            assert statuses(ui, MARKET, [DAY]) == all_fresh(MARKET, [DAY]) | {
                (asset, DAY): "STALE" for asset in MARKET
            }

            # The rebuild follows whoever launched the run: the sensor asks for every date the
            # correction reaches, and its run leaves everything fresh.
            sensor = defs.get_sensor_def("market_after_auctions")
            resources = {key: defs.resources[key] for key in ("warehouse", "price_index")}
            requests = sensor(dg.build_sensor_context(instance=instance, resources=resources))
            assert isinstance(requests, list), requests
            assert [
                (
                    r.tags["dagster/asset_partition_range_start"],
                    r.tags["dagster/asset_partition_range_end"],
                )
                for r in requests
            ] == [(DAY, DAYS[-1])]
            market = defs.resolve_job_def("flower_market_job")
            result = market.execute_in_process(instance=instance, tags=requests[0].tags)
            assert result.success
            assert statuses(ui, everything, DAYS) == all_fresh(everything, DAYS)


def warehouse_digest(path) -> dict[str, tuple[int, str]]:
    """Every table of the warehouse: its row count and a digest of its rows."""
    with sqlite3.connect(path) as conn:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        found = {}
        for table in tables:
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            found[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        return found


JUDGED = dict(CHECKS) | {
    "daily_item_prices": DAILY_ITEM_PRICES_CHECKS,
    "variety_price_changes": VARIETY_PRICE_CHANGES_CHECKS,
    "category_price_index": CATEGORY_PRICE_INDEX_CHECKS,
}


def launch_checks_job(ui: Ui, tags: dict[str, str]) -> tuple[str, str]:
    """flower_checks_job launched as the Launchpad launches it: its run id and final status."""
    run_id = ui.launch("flower_checks_job", tags)
    return run_id, ui.wait_for_run(run_id, timeout_s=300)


def latest_execution(ui: Ui, asset: str, check: str, day: str) -> dict:
    (latest,) = ui.query(
        """query($key: AssetKeyInput!, $name: String!, $p: String) {
          assetCheckExecutions(assetKey: $key, checkName: $name, partition: $p, limit: 1) {
            runId status } }""",
        key={"path": [asset]},
        name=check,
        p=day,
    )["assetCheckExecutions"]
    return latest


def step_failures(ui: Ui, run_id: str) -> list[str]:
    events = ui.query(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection {
            events { __typename ... on ExecutionStepFailureEvent { error { message } } } } } } }""",
        id=run_id,
    )["runOrError"]["eventConnection"]["events"]
    return [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]


def materialization_count(instance: dg.DagsterInstance) -> int:
    return len(
        instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        )
    )


def test_the_checks_job_has_a_date_picker_and_judges_chosen_dates_without_writing(
    tmp_path, monkeypatch
):
    home = embedded_home(tmp_path / "dagster_home")
    warehouse = tmp_path / "warehouse.sqlite"
    prices = {"2024-05-06": 10_000, "2024-05-08": 12_000, "2024-05-10": 11_000}
    never_fetched = "2024-05-14"
    with FakeAtServer(answer(prices)) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=f"sqlite:///{warehouse}",
            FLOWER_START_DATE="2024-04-01",
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        defs = fresh_definitions().defs
        with dg.DagsterInstance.get() as instance, webserver(env, tmp_path / "web.log") as ui:
            run_range(defs.resolve_job_def("flower_auction_job"), instance, DAYS[0], DAYS[-1])
            run_range(defs.resolve_job_def("flower_market_job"), instance, DAYS[0], DAYS[-1])
            repo = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

            # An op job with a partition set: the UI shows OpJobPartitionsView, whose "Launch
            # backfill…" opens the date picker, and a Launchpad with a partition selector.
            sets = ui.query(
                """query($repo: RepositorySelector!) {
                  partitionSetsOrError(repositorySelector: $repo, pipelineName: "flower_checks_job") {
                    ... on PartitionSets { results { name pipelineName } } } }""",
                repo=repo,
            )["partitionSetsOrError"]["results"]
            assert [s["name"] for s in sets] == ["flower_checks_job_partition_set"]
            job = ui.query(
                """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
                    ... on Pipeline { isJob isAssetJob } } }""",
                selector={**repo, "pipelineName": "flower_checks_job"},
            )["pipelineOrError"]
            assert job == {"isJob": True, "isAssetJob": False}

            before = warehouse_digest(warehouse)
            materializations = materialization_count(instance)
            calls = len(server.requests)

            # A range (the Launchpad's tags, as a ranged launch sends them), then one date.
            ranged, status = launch_checks_job(
                ui,
                {
                    "dagster/asset_partition_range_start": DAYS[0],
                    "dagster/asset_partition_range_end": DAYS[-1],
                },
            )
            assert status == "SUCCESS", ranged
            single, status = launch_checks_job(ui, {"dagster/partition": DAY})
            assert status == "SUCCESS", single

            # Nothing fetched, nothing written, nothing materialized.
            assert warehouse_digest(warehouse) == before
            assert materialization_count(instance) == materializations
            assert len(server.requests) == calls
            # Every date's check status comes from these runs and is current in the check's
            # Partitions view: the evaluations aim at each date's latest materialization.
            for asset, checks in JUDGED.items():
                shown_checks = ui.checks(asset)
                for check in checks:
                    shown = statuses_by_date(shown_checks[check.name])
                    assert {d: shown.get(d) for d in DAYS} == dict.fromkeys(DAYS, "SUCCEEDED"), (
                        asset,
                        check.name,
                    )
                    for day in DAYS:
                        expected = single if day == DAY else ranged
                        assert latest_execution(ui, asset, check.name, day) == {
                            "runId": expected,
                            "status": "SUCCEEDED",
                        }, (asset, check.name, day)
            everything = AUCTION + MARKET
            assert statuses(ui, everything, DAYS) == all_fresh(everything, DAYS)

            # A date never loaded fails auction_date_loaded, and the run fails naming the date,
            # after every check of every asset was judged.
            failed, status = launch_checks_job(ui, {"dagster/partition": never_fetched})
            assert status == "FAILURE", failed
            (message,) = step_failures(ui, failed)
            assert never_fetched in message and "never fetched" in message, message
            loaded = statuses_by_date(ui.checks("bidding_flowers")["auction_date_loaded"])
            assert loaded[never_fetched] == "FAILED"
            assert loaded[DAY] == "SUCCEEDED"
            for asset, checks in JUDGED.items():
                for check in checks:
                    assert latest_execution(ui, asset, check.name, never_fetched)["runId"] == (
                        failed
                    ), (asset, check.name)
            assert warehouse_digest(warehouse) == before

            # "Launch backfill…" on the Partitions tab sends this: the daemon launches one run
            # per chosen date.
            backfill = ui.query(
                """mutation($params: LaunchBackfillParams!) {
                  launchPartitionBackfill(backfillParams: $params) {
                    __typename ... on LaunchBackfillSuccess { backfillId }
                    ... on PythonError { message } } }""",
                params={
                    "selector": {
                        "partitionSetName": "flower_checks_job_partition_set",
                        "repositorySelector": repo,
                    },
                    "partitionNames": [DAYS[0], DAYS[2]],
                    "tags": [],
                },
            )["launchPartitionBackfill"]
            assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
            with daemon(env, tmp_path / "daemon.log"):
                runs = backfill_runs(ui, backfill["backfillId"], 2, tmp_path / "daemon.log")
            assert sorted((r["partition"], r["status"]) for r in runs) == [
                (DAYS[0], "SUCCESS"),
                (DAYS[2], "SUCCESS"),
            ]
            for day in (DAYS[0], DAYS[2]):
                (run,) = [r for r in runs if r["partition"] == day]
                assert latest_execution(ui, "bidding_flowers", "auction_date_loaded", day) == {
                    "runId": run["runId"],
                    "status": "SUCCEEDED",
                }
            assert warehouse_digest(warehouse) == before


@contextmanager
def daemon(env: dict[str, str], log):
    process = subprocess.Popen(
        [BIN / "dagster-daemon", "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


def backfill_runs(ui: Ui, backfill_id: str, count: int, log, timeout_s: float = 240) -> list[dict]:
    """The backfill's runs once `count` of them finished: run id, partition and status."""
    deadline = time.monotonic() + timeout_s
    runs: list[dict] = []
    while time.monotonic() < deadline:
        found = ui.query(
            """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill",
                value: $id}]}) { ... on Runs { results { runId status tags { key value } } } } }""",
            id=backfill_id,
        )["runsOrError"]["results"]
        runs = [
            {
                "runId": r["runId"],
                "status": r["status"],
                "partition": {t["key"]: t["value"] for t in r["tags"]}.get("dagster/partition"),
            }
            for r in found
        ]
        if len(runs) == count and all(
            r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs
        ):
            return runs
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id}: {runs}; daemon: {log.read_text()[-3000:]}")
