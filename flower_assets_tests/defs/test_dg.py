"""Dagster's `dg` tooling sees the code location the webserver and daemon load."""

from __future__ import annotations

import json
import subprocess

from flower_assets_tests.webui import BIN, REPO, clean_env


def dg(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(DAGSTER_HOME=str(tmp_path), HOME=str(tmp_path))
    return subprocess.run(
        [BIN / "dg", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_dg_checks_and_lists_the_definitions_of_the_defs_folder(tmp_path):
    checked = dg(tmp_path, "check", "defs")
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = dg(tmp_path, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == {
        "public_bidding_flowers",
        "flower_types",
        "flowers",
        "bidding_flowers",
        "market_inputs",
        "daily_item_prices",
        "variety_price_changes",
        "category_price_index",
        "market_report",
    }
    assert len(found["asset_checks"]) == 21  # the freshness check only with FLOWER_API_KEY
    assert {j["name"] for j in found["jobs"]} == {
        "flower_auction_job",
        "flower_market_job",
        "flower_report_job",
        "flower_checks_job",
    }
    assert {r["name"] for r in found["resources"]} == {
        "alerts",
        "at_api",
        "price_index",
        "quarantine_threshold",
        "warehouse",
    }
    assert {s["name"] for s in found["sensors"]} == {
        "flower_alerts",
        "history_backfill",
        "market_after_auctions",
        "release_dead_runs",
        "report_after_market",
    }
    assert [s["name"] for s in found["schedules"]] == ["daily_auction_schedule"]
