"""A refused setting stops the command and the code location with the same one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flower_assets_tests.cli.test_cli import clean_env

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow

LINE = "FLOWER_INDEX_BASE_DATE='2024-13-01' must be a YYYY-MM-DD date, e.g. 2024-01-01, or unset"


def test_a_bad_index_base_date_refuses_materialize_in_one_line(tmp_path):
    done = subprocess.run(
        [BIN / "flower-assets", "materialize"],
        cwd=tmp_path,
        env=clean_env(FLOWER_INDEX_BASE_DATE="2024-13-01", DAGSTER_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert done.stderr.splitlines() == [f"flower-assets materialize: {LINE}"]
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_the_code_location_refuses_it_with_the_same_line_before_loading_anything(tmp_path):
    done = subprocess.run(
        [BIN / "dagster", "definitions", "validate", "-m", "flower_assets.definitions"],
        cwd=REPO,
        env=clean_env(FLOWER_INDEX_BASE_DATE="2024-13-01", DAGSTER_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said[-3000:]
    assert f"flower_assets.settings.BadSetting: {LINE}\n" in said, said[-3000:]
    # Refused in definitions.py itself, before any module of defs/ reads a setting.
    assert "flower_assets/defs/" not in said, said[-3000:]
