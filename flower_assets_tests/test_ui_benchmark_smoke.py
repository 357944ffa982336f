"""The UI benchmark (benchmarks/ui_queries.py) runs end to end: load, webserver, every query.

Only that every query the UI's pages issue was answered and timed is asserted, never how fast:
CI machines are shared and noisy.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_ui_benchmark_times_every_page_query(tmp_path: Path) -> None:
    home = tmp_path / "home"
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
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    queries = ui_graphql()

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
