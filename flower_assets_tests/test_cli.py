"""The commands a user types, run as subprocesses the way they would run them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from flower_assets.categories import Category
from flower_assets.market import day_items
from flower_assets.testing import FakeAtServer

from .conftest import TEST_KEY, _drop_tables

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    env["DAGSTER_DISABLE_TELEMETRY"] = "yes"
    env.update(extra)
    return env


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("public_bidding_flowers", "flower_types", "flowers", "bidding_flowers")
        }


def test_materialize_command_runs_the_sample_days_and_says_where_the_tables_are(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    done = subprocess.run(
        [BIN / "flower-assets", "materialize"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    warehouse = tmp_path / ".dagster_home" / "flower_warehouse.sqlite"
    assert f"Warehouse: {warehouse}" in done.stdout
    assert "sample data" in done.stdout
    tables = counts(warehouse)
    assert all(n > 0 for n in tables.values()), tables
    assert tables["bidding_flowers"] == tables["public_bidding_flowers"]
    # The run is recorded in the repo-local instance that `dagster dev` shows.
    assert (tmp_path / ".dagster_home" / "storage").is_dir()


def test_dagster_cli_materializes_one_date_from_the_live_client(tmp_path, postgres_url):
    _drop_tables(postgres_url)
    with FakeAtServer(lambda day, category: day_items(day, category)) as server:
        done = subprocess.run(
            [
                BIN / "dagster",
                "asset",
                "materialize",
                "-m",
                "flower_assets",
                "--select",
                "*",
                "--partition",
                "2024-05-10",
            ],
            cwd=tmp_path,
            env=clean_env(
                FLOWER_API_KEY=TEST_KEY,
                FLOWER_API_BASE_URL=server.url,
                FLOWER_DATABASE_URL=postgres_url,
                DAGSTER_HOME=str(tmp_path),
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        calls = list(server.requests)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(calls) == 4 and {c["flowerGubn"] for c in calls} == {"1", "2", "3", "4"}
    assert TEST_KEY not in done.stdout + done.stderr
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bidding_flowers WHERE auction_date = '2024-05-10'")
        expected = sum(len(day_items(date(2024, 5, 10), c)) for c in Category)
        assert cursor.fetchone()[0] == expected
    conn.close()
