"""The UI benchmark (benchmarks/ui_queries.py) runs end to end: load, webserver, every query.

Once on the embedded SQLite instance, once on the production PostgreSQL profile (its databases
dropped after). Only that every query the UI's pages issue was answered, timed and judged is
asserted, never how fast: CI machines are shared and noisy.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from flower_assets_tests.conftest import POSTGRES_ADMIN_URL, postgres_admin

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
DAYS = 5


def ui_graphql():
    """benchmarks/ui_graphql.py, the list of the pages' queries, without touching sys.path."""
    name = "benchmarks_ui_graphql"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / "ui_graphql.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def postgres_server() -> str:
    """The test PostgreSQL server as ui_queries.py's --postgres-url (psycopg2), or a skip."""
    postgres_admin().close()
    return POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg2://", 1)


def databases() -> set[str]:
    """The databases on the test server."""
    connection = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    with closing(connection), connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.slow
@pytest.mark.parametrize("instance", ["sqlite", "postgres"])
def test_ui_benchmark_times_every_page_query(tmp_path: Path, instance: str) -> None:
    home = tmp_path / "home"
    extra = []
    if instance == "postgres":
        extra = ["--postgres-url", postgres_server(), "--drop-databases"]
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "ui_queries.py"),
            "--start",
            "2024-01-01",
            "--days",
            str(DAYS),
            "--volume",
            "0.05",
            "--home",
            str(home),
            "--repeat",
            "2",
            "--instance",
            instance,
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    queries = ui_graphql()

    assert result["instance"] == instance
    assert result["dates"] == DAYS
    assert result["start"] == "2024-01-01" and result["end"] == "2024-01-05"
    assert set(result["queries"]) == {query.name for query in queries.UI_QUERIES}
    for name, timing in result["queries"].items():
        assert len(timing["times_s"]) == 2, name
        assert all(isinstance(t, float) and t > 0 for t in timing["times_s"]), name
        assert isinstance(timing["cold_s"], float) and isinstance(timing["warm_s"], float), name
        assert timing["response_bytes"] > 0, name
    assert set(result["pages"]) == set(queries.PAGES)
    assert all(isinstance(page["cold_s"], float) for page in result["pages"].values())
    # The instance holds what a 5-date backfill records: every asset's checks, for every date.
    assert result["runs"] == 1
    assert result["event_log_rows"] > 0
    assert result["asset_check_executions_per_date"] >= DAYS * len(result["checks_per_asset"])
    assert result["check"]  # the check page was opened on a real check
    # Every page judged against the limit; the storages the webserver used are reported.
    assert set(result["verdicts"]) == set(queries.PAGES)
    assert isinstance(result["all_under_limit"], bool)
    assert set(result["storages"]) == {"run_storage", "event_log_storage", "schedule_storage"}
    assert "VERDICT all pages" in done.stdout
    if instance == "postgres":
        assert "Postgres" in result["storages"]["event_log_storage"]
        assert set(result["databases"]) == {"dagster", "warehouse"}
        # --drop-databases left neither behind.
        assert not set(result["databases"].values()) & databases()
