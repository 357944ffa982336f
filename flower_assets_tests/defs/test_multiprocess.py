"""Runs are correct under Dagster's multiprocess executor, a process per step.

The auction layer computes each date in one step and the check steps read what the warehouse
stores, so nothing passes between steps in memory: a run whose steps each run in a process of
their own gives the same tables, the same per-date metadata and the same per-date check results
as the platform's in-process run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from flower_assets.quality.catalog import (
    BIDDING_CHECKS,
    FLOWER_TYPES_CHECKS,
    FLOWERS_CHECKS,
    RAW_CHECKS,
)
from flower_assets.sample.days import sample_rows
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets_tests.conftest import TEST_KEY, tables
from flower_assets_tests.webui import BIN, clean_env, embedded_home

pytestmark = pytest.mark.slow
FIRST, LAST = "2024-05-08", "2024-05-11"  # Wednesday to Saturday: three auctions, one without
RANGE = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}


def execute(module: str, home: Path, warehouse: str, api_url: str) -> subprocess.CompletedProcess:
    env = clean_env(
        DAGSTER_HOME=str(home),
        FLOWER_API_KEY=TEST_KEY,
        FLOWER_API_BASE_URL=api_url,
        FLOWER_DATABASE_URL=warehouse,
    )
    argv = [BIN / "dagster", "job", "execute", "-m", module, "-j", "flower_auction_job"]
    argv += ["--tags", json.dumps(RANGE)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


AUCTION_CHECKS = (*RAW_CHECKS, *FLOWER_TYPES_CHECKS, *FLOWERS_CHECKS, *BIDDING_CHECKS)
TABLES = ("public_bidding_flowers", "flower_types", "flowers", "bidding_flowers")
PER_RUN = ("warehouse", "latest_auction_date")  # the warehouse's path, the UI link's host


def shown(home: Path, monkeypatch) -> tuple[set[int], dict, dict]:
    """The run's step processes; each table's latest metadata and data version per date; each
    check's result per date, which must judge the date's latest materialization (as the UI
    counts it)."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        starts = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        pids = {record.event_log_entry.dagster_event.pid for record in starts.records}
        latest, metadata = {}, {}
        for name in TABLES:
            for record in instance.fetch_materializations(dg.AssetKey(name), limit=100).records:
                event = record.asset_materialization
                if (name, event.partition) in latest:
                    continue  # newest first
                latest[(name, event.partition)] = record.storage_id
                metadata[(name, event.partition)] = (
                    {k: v.value for k, v in event.metadata.items() if k not in PER_RUN},
                    event.tags["dagster/data_version"],
                )
        checks = {}
        evaluations = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        for record in evaluations.records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            name = evaluation.asset_key.to_user_string()
            target = evaluation.target_materialization_data.storage_id
            assert target == latest[(name, evaluation.partition)], (name, evaluation.partition)
            checks[(name, evaluation.check_name, evaluation.partition)] = evaluation.passed
    return pids, metadata, checks


def test_a_run_in_a_process_per_step_equals_the_in_process_run(tmp_path, monkeypatch):
    results = {}
    with FakeAtServer(sample_rows) as server:
        for module in (
            "flower_assets.definitions",
            "flower_assets_tests.defs.multiprocess_location",
        ):
            home = embedded_home(tmp_path / module / "dagster_home")
            warehouse = f"sqlite:///{tmp_path / module / 'warehouse.sqlite'}"
            done = execute(module, home, warehouse, server.url)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            results[module] = (tables(warehouse), *shown(home, monkeypatch))
    (one, one_pids, one_meta, one_checks), (apart, apart_pids, apart_meta, apart_checks) = (
        results.values()
    )
    assert len(one_pids) == 1 and len(apart_pids) == 5  # flower_auction and 4 check steps
    assert one_checks == apart_checks and len(apart_checks) == len(AUCTION_CHECKS) * 4
    assert one_meta == apart_meta and len(apart_meta) == 4 * 4
    for name, frame in one.items():
        assert frame.equals(apart[name]), name
