"""A newcomer's first five minutes, as the UI shows them: the README's first command on a fresh
clone, then `flower-assets ui` (the webserver and the daemon) on the instance it leaves.

Everything is asserted through the webserver's GraphQL, the queries the UI's pages send.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flower_assets_tests.webui import (
    BIN,
    LOCATION,
    REPO,
    REPOSITORY,
    Ui,
    clean_env,
    free_port,
    statuses_by_date,
    wait_until_serving,
)

AUCTION_ASSETS = ["public_bidding_flowers", "flower_types", "flowers", "bidding_flowers"]
MARKET_ASSETS = ["daily_item_prices", "variety_price_changes", "category_price_index"]
# The sample's deliberate faults: (asset, check, date) pairs the README's tour names, each
# showing a check at work. Every other check passes on every sample date.
DELIBERATE_FAILURES: set[tuple[str, str, str]] = set()
UNCHANGED_DATE = "2024-05-10"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Iterator[tuple[Ui, Path, str]]:
    """The README's first two commands in a fresh directory: the sample run, then the UI."""
    clone = tmp_path_factory.mktemp("clone")
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(REPO / name, clone / name)
    done = subprocess.run(
        [BIN / "flower-assets", "materialize"],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    port = free_port()
    log = clone / "ui.log"
    ui = subprocess.Popen(
        [BIN / "flower-assets", "ui", "--port", str(port)],
        cwd=clone,
        env=clean_env(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # dagster dev and the webserver, daemon and code server it starts
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, ui, log)
        yield Ui(url), clone, done.stdout
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()


def test_the_ui_command_starts_without_warnings_and_ui_and_daemon_share_the_instance(first_run):
    _, clone, output = first_run
    assert "uv run flower-assets ui" in output
    said = (clone / "ui.log").read_text()
    assert f"over the instance in {clone / '.dagster_home'}" in said
    # Dagster warned of ./dagster.yaml "will not be used" (it is, by copy) and of dagster dev.
    assert "WARNING" not in said and "Warning" not in said, said


def partition_stats(ui: Ui) -> dict[str, dict[str, int]]:
    data = ui.query(
        """{ assetNodes { assetKey { path } partitionStats {
              numMaterialized numPartitions numFailed numMaterializing } } }"""
    )
    return {
        "/".join(node["assetKey"]["path"]): node["partitionStats"]
        for node in data["assetNodes"]
        if node["partitionStats"] is not None
    }


def test_every_asset_of_the_sample_instance_is_fully_materialized(first_run):
    ui, _, _ = first_run
    stats = partition_stats(ui)
    for asset in AUCTION_ASSETS + MARKET_ASSETS:
        # The sample period, 2024-02-01 … 2024-08-31, and nothing else: 100% filled.
        assert stats[asset]["numPartitions"] == 213, (asset, stats[asset])
        assert stats[asset]["numMaterialized"] == 213, (asset, stats[asset])
        assert stats[asset]["numFailed"] == 0, (asset, stats[asset])


def test_the_auction_jobs_partitions_tab_counts_every_sample_date_materialized(first_run):
    # A job's Partitions tab counts a date missing unless every partitioned asset of the job
    # is materialized on it. (flower_market_job's observed source market_inputs never is: its
    # description says so.)
    ui, _, _ = first_run
    for job in ("flower_auction_job",):
        nodes = ui.query(
            """query($p: PipelineSelector!) { assetNodes(pipeline: $p) {
                  assetKey { path } isPartitioned partitionStats { numMaterialized numPartitions }
                } }""",
            p={
                "pipelineName": job,
                "repositoryName": REPOSITORY,
                "repositoryLocationName": LOCATION,
            },
        )["assetNodes"]
        for node in nodes:
            if node["isPartitioned"]:
                assert node["partitionStats"] == {"numMaterialized": 213, "numPartitions": 213}, (
                    job,
                    node,
                )


def test_the_sample_fails_only_the_checks_the_readme_names(first_run):
    ui, _, _ = first_run
    failed = set()
    for asset in AUCTION_ASSETS + MARKET_ASSETS:
        for name, check in ui.checks(asset).items():
            for day, status in statuses_by_date(check).items():
                assert status != "MISSING", (asset, name, day)
                if status == "FAILED":
                    failed.add((asset, name, day))
    assert failed == DELIBERATE_FAILURES
    readme = (REPO / "README.md").read_text()
    for asset, name, day in DELIBERATE_FAILURES:
        assert name in readme and day in readme, (asset, name, day)


def test_the_checks_job_has_a_partitions_tab(first_run):
    ui, _, _ = first_run
    data = ui.query(
        """query($repo: RepositorySelector!) {
          partitionSetsOrError(repositorySelector: $repo, pipelineName: "flower_checks_job") {
            ... on PartitionSets { results { name } } } }""",
        repo={"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY},
    )
    assert data["partitionSetsOrError"]["results"], data


def test_every_cli_run_is_on_the_timeline(first_run):
    ui, _, output = first_run
    runs = ui.query(
        """{ runsOrError { ... on Runs { results {
              runId jobName repositoryOrigin { repositoryLocationName repositoryName } } } } }"""
    )["runsOrError"]["results"]
    printed = set(
        re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", output)
    )
    assert printed and printed <= {run["runId"] for run in runs}
    for run in runs:
        assert run["repositoryOrigin"] == {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
        }, run


def test_materialize_from_the_ui_on_an_unchanged_date_leaves_everything_fresh(first_run):
    ui, _, _ = first_run
    for asset in ["bidding_flowers", *MARKET_ASSETS]:
        assert ui.stale_status(asset, UNCHANGED_DATE) == "FRESH", asset
    # Exactly what the UI's Materialize button sends for one asset and one date: the asset
    # with its own checks.
    checks = [("bidding_flowers", name) for name in ui.checks("bidding_flowers")]
    run_id = ui.launch(
        "__ASSET_JOB", {"dagster/partition": UNCHANGED_DATE}, checks, ["bidding_flowers"]
    )
    assert ui.wait_for_run(run_id, timeout_s=300) == "SUCCESS"
    time.sleep(1)
    for asset in ["bidding_flowers", *MARKET_ASSETS]:
        assert ui.stale_status(asset, UNCHANGED_DATE) == "FRESH", asset


def check_description(ui: Ui, asset: str, check: str, partition: str) -> str:
    (execution,) = ui.query(
        """query($key: AssetKeyInput!, $check: String!, $p: String) { assetCheckExecutions(
              assetKey: $key, checkName: $check, partition: $p, limit: 1) {
              evaluation { description } } }""",
        key={"path": [asset]},
        check=check,
        p=partition,
    )["assetCheckExecutions"]
    return execution["evaluation"]["description"]


def test_the_zeros_of_a_date_without_auction_say_why(first_run):
    ui, _, _ = first_run
    # The sample's last date is a Saturday: the asset overviews show its zeros.
    for asset in ["public_bidding_flowers", "bidding_flowers", *MARKET_ASSETS]:
        shown = ui.materialization_metadata(asset, "2024-08-31")
        assert shown["dagster/row_count"] == 0, (asset, shown)
        assert shown["auction"] == "no auction on 2024-08-31 (Saturday)", (asset, shown)
        # It leads to the latest date that had an auction, on the asset's Partitions page.
        assert shown["latest_auction_date"].endswith(
            f"/assets/{asset}?view=partitions&partition=2024-08-30"
        ), (asset, shown)
    said = check_description(ui, "bidding_flowers", "prices_ordered", "2024-08-31")
    assert said == "no auction on 2024-08-31 (Saturday): nothing to check"
    # A check that has something to say about a closed day says it.
    said = check_description(ui, "public_bidding_flowers", "expected_auction_day", "2024-08-31")
    assert "0 of 0" not in said and said != "no auction on 2024-08-31 (Saturday): nothing to check"
