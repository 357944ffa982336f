"""The backfill benchmark (benchmarks/backfill.py) runs end to end and its counts add up.

Only correctness and counts are asserted, never timing: CI machines are shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "backfill.py"
# 2024-01-01 is a holiday (no auction), the 2nd a Tuesday (foliage, orchids), the 3rd a
# Wednesday (cut flowers): empty and non-empty answers, three of the four categories.
DAYS = 3


@pytest.mark.slow
def test_backfill_benchmark_runs_and_checks_itself(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--days",
            str(DAYS),
            "--start",
            "2024-01-01",
            "--warehouse",
            "sqlite",
            "--volume",
            "0.05",
            # Two one-partition runs keep the test short and still cover every category traded.
            "--sample",
            "2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["partitions"] == DAYS
    assert result["runs"] == 1
    # The client asks every category every day, once: the fake server counted the calls.
    assert result["api_calls"] == 4 * DAYS == result["api_calls_expected"]
    assert result["rows"] > 0
    assert result["checks"] == {
        "runs_succeeded": True,
        "all_partitions_materialized": True,
        "rows_as_generated": True,
        "sample_equal_to_per_partition": True,
        "per_partition_api_calls_as_expected": True,
    }
    assert result["correct"] is True
    # Each sample partition ran once per executor: Dagster's default, and the platform's own.
    assert len(result["per_partition_walls_s"]) == 2
    assert len(result["per_partition_in_process_walls_s"]) == 2
