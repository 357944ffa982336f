"""The production profile for real: dagster-daemon on PostgreSQL runs a queued backfill."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import TEST_KEY, _drop_tables

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATES = ["2024-05-07", "2024-05-08", "2024-05-09", "2024-05-10"]
MAX_CONCURRENT_RUNS = 2  # as deploy/postgres/dagster.yaml says
pytestmark = pytest.mark.slow


def test_daemon_runs_a_queued_backfill_within_the_concurrency_limit(
    tmp_path, postgres_url, dagster_postgres_url, monkeypatch
):
    _drop_tables(postgres_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    dagster_url = dagster_postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    with FakeAtServer(lambda day, category: day_items(day, category)) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))},
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": dagster_url,
            "DAGSTER_DISABLE_TELEMETRY": "yes",
            "FLOWER_API_KEY": TEST_KEY,
            "FLOWER_API_BASE_URL": server.url,
            "FLOWER_DATABASE_URL": postgres_url,
            # history_backfill stays idle (its reserve takes the whole quota): the test counts
            # the backfill's own runs and calls.
            "FLOWER_HISTORY_RESERVE_CALLS": "1000",
        }
        daemon = subprocess.Popen(
            [BIN / "dagster-daemon", "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "daemon.log").open("w"),
        )
        try:
            submitted = subprocess.run(
                [
                    BIN / "dagster",
                    "job",
                    "backfill",
                    "-w",
                    "workspace.yaml",
                    "-j",
                    "flower_auction_job",
                    "--partitions",
                    ",".join(DATES),
                    "--noprompt",
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert submitted.returncode == 0, submitted.stderr[-2000:]
            monkeypatch.setenv("DAGSTER_HOME", str(home))
            monkeypatch.setenv("DAGSTER_PG_URL", dagster_url)
            with dg.DagsterInstance.get() as instance:
                records = _wait_for_runs(instance, len(DATES), timeout_s=400)
                materialized = instance.get_materialized_partitions(dg.AssetKey("bidding_flowers"))
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        calls = len(server.requests)
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * len(DATES), (
        tmp_path / "daemon.log"
    ).read_text()[-3000:]
    assert materialized == set(DATES)
    assert calls == 4 * len(DATES)
    intervals = sorted((r.start_time, r.end_time) for r in records)
    overlap = max(sum(1 for s, e in intervals if s < end and e > start) for start, end in intervals)
    assert 1 <= overlap <= MAX_CONCURRENT_RUNS
    rows = sum(len(day_items(date.fromisoformat(d), c)) for d in DATES for c in Category)
    assert rows > 0


def _wait_for_runs(instance: dg.DagsterInstance, count: int, timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Only the backfill's runs: the freshness sensor launches check-only runs of its own.
        records = instance.get_run_records(dg.RunsFilter(job_name="flower_auction_job"))
        done = [r for r in records if r.dagster_run.is_finished]
        if len(records) >= count and len(done) == len(records):
            return sorted(records, key=lambda r: r.start_time or 0)
        time.sleep(2)
    states = [
        (r.dagster_run.run_id[:8], r.dagster_run.status.value) for r in instance.get_run_records()
    ]
    raise AssertionError(f"runs did not finish within {timeout_s}s: {states}")
