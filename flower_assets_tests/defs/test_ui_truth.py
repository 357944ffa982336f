"""What the Dagster UI shows for dates loaded in multi-date runs, read through its GraphQL API.

A ranged backfill of 8 auction dates through the CLI, a second one in which one date fails a
blocking check and another a non-blocking one, then a real dagster-webserver on the same
embedded instance: per-date metadata, per-date check statuses, re-running a check from the UI,
per-date blocking, and an unchanged re-run that leaves nothing skipped or stale.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest

from flower_assets.quality.catalog import (
    BIDDING_CHECKS,
    FLOWER_TYPES_CHECKS,
    FLOWERS_CHECKS,
    RAW_CHECKS,
)
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.cache import kst_today
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import TEST_KEY, item
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
CHECKS = {
    asset: {check.name for check in checks}
    for asset, checks in zip(
        ("public_bidding_flowers", "flower_types", "flowers", "bidding_flowers"),
        (RAW_CHECKS, FLOWER_TYPES_CHECKS, FLOWERS_CHECKS, BIDDING_CHECKS),
        strict=True,
    )
}

LATEST = kst_today() - timedelta(days=1)
DATES = [LATEST - timedelta(days=n) for n in range(7, -1, -1)]
BLOCKED, WARNED, QUIET, RERUN = DATES[2], DATES[5], DATES[6], DATES[4]
ASSETS = ("public_bidding_flowers", "flower_types", "flowers", "bidding_flowers")


def good_rows(day: date, category: Category) -> list[dict]:
    index = DATES.index(day)
    if day == QUIET:
        return []
    if category is Category.CUT_FLOWERS:
        return [
            item(
                day=day.isoformat(),
                pum="장미" if n % 2 else "국화",
                good=f"품종{n}",
                tot_qty=str(10 + n),
                tot_amt=str(10_000 * (10 + n)),
            )
            for n in range(3 + index)
        ]
    if category is Category.ORCHIDS and index % 2:
        return [item(day=day.isoformat(), gubn="난", pum="호접란", good="만천홍", grade="특")]
    return []


def corrected_rows(day: date, category: Category) -> list[dict]:
    rows = good_rows(day, category)
    if day == BLOCKED:  # a field the API never had: schema drift, which blocks the date
        return [{**row, "newField": "x"} for row in rows]
    if day == WARNED and category is Category.CUT_FLOWERS:  # min above avg in 2 of 8 records
        return [{**row, "minAmt": "11000"} if n < 2 else row for n, row in enumerate(rows)]
    return rows


class Source:
    """The fake aT server's answers, switched between versions like a source that corrects."""

    def __init__(self) -> None:
        self.rows = good_rows

    def __call__(self, day: date, category: Category) -> list[dict]:
        return self.rows(day, category)


def cli(env: dict[str, str], first: date, last: date, exit_code: int = 0) -> str:
    done = subprocess.run(
        [BIN / "flower-assets", "materialize", "--from", str(first), "--to", str(last)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == exit_code, done.stderr[-3000:]
    # The auction run's line comes first: on stdout if it succeeded, on stderr if it failed.
    said = done.stdout if exit_code == 0 else done.stderr
    return re.search(r"Run 1/1 (\S+) \(.*\) (succeeded|failed)", said).group(1)


def stored(path: Path) -> dict[str, dict[date, list[tuple]]]:
    with sqlite3.connect(path) as conn:

        def rows(sql: str) -> dict[date, list[tuple]]:
            found: dict[date, list[tuple]] = {}
            for day, *rest in conn.execute(sql):
                found.setdefault(date.fromisoformat(day), []).append(tuple(rest))
            return found

        return {
            "public_bidding_flowers": rows(
                "SELECT auction_date, flower_gubn, raw_item FROM public_bidding_flowers"
            ),
            "bidding_flowers": rows(
                "SELECT auction_date, flower_id, grade, min_price, avg_price FROM bidding_flowers"
            ),
            "flowers": rows("SELECT DISTINCT auction_date, flower_id FROM bidding_flowers"),
            "flower_types": rows(
                "SELECT DISTINCT b.auction_date, f.flower_type_id FROM bidding_flowers b"
                " JOIN flowers f ON f.id = b.flower_id"
            ),
        }


def ours(ui: Ui, asset: str) -> dict[str, dict]:
    """The asset's per-date checks (not Dagster's freshness check of the latest date)."""
    return {name: c for name, c in ui.checks(asset).items() if name in CHECKS[asset]}


def test_the_ui_tells_the_truth_for_every_date_of_a_ranged_backfill(tmp_path):
    home = embedded_home(tmp_path / "dagster_home")
    warehouse = tmp_path / "warehouse.sqlite"
    source = Source()
    with FakeAtServer(source) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=f"sqlite:///{warehouse}",
            FLOWER_START_DATE=str(DATES[0] - timedelta(days=30)),
            # Every date of the range is re-fetched, as a correction window would.
            FLOWER_CORRECTION_DAYS="10",
        )
        first_run = cli(env, DATES[0], DATES[-1])
        before = stored(warehouse)
        source.rows = corrected_rows
        # One date's answer is blocked: the others load, and the command says it and exits 1.
        second_run = cli(env, DATES[0], DATES[-1], exit_code=1)
        after = stored(warehouse)

        with webserver(env, tmp_path / "webserver.log") as ui:
            # Per-date metadata: each date's own figures, whatever the run's range.
            for asset in ASSETS:
                for day in DATES:
                    shown = ui.materialization_metadata(asset, day.isoformat())
                    assert shown["__run_id"] == second_run
                    assert shown["dagster/row_count"] == len(after[asset].get(day, [])), (
                        asset,
                        day,
                    )
            raw = ui.materialization_metadata("public_bidding_flowers", WARNED.isoformat())
            assert raw["content_changed"] is True and raw["api_calls"] == 4
            # The correction of WARNED changed 2 records, each kept with its old and new values.
            assert raw["corrected_rows"] == 2
            assert raw["corrections"] == {"added": 0, "removed": 0, "changed": 2}
            assert raw["rows_per_category"]["절화"] == len(good_rows(WARNED, Category.CUT_FLOWERS))
            first = ui.materialization_metadata("public_bidding_flowers", DATES[0].isoformat())
            assert first["content_changed"] is False and first["corrected_rows"] == 0
            unchanged = ui.materialization_metadata("bidding_flowers", DATES[0].isoformat())
            assert unchanged["content_changed"] is False and unchanged["blocked_by"] == "none"
            blocked = ui.materialization_metadata("bidding_flowers", BLOCKED.isoformat())
            assert (
                "schema_conforms" in blocked["blocked_by"] and blocked["content_changed"] is False
            )

            # Per-date check status: Passed or Failed for every date, each as expected.
            failing = {
                ("public_bidding_flowers", "schema_conforms"): {BLOCKED},
                ("bidding_flowers", "prices_ordered"): {WARNED},
                ("bidding_flowers", "auction_date_loaded"): {BLOCKED},
            }
            for asset in ASSETS:
                for name, check in ours(ui, asset).items():
                    assert check["canExecuteIndividually"] == "CAN_EXECUTE", name
                    assert "Severity" in check["description"]
                    expected = {
                        d.isoformat(): "FAILED"
                        if d in failing.get((asset, name), ())
                        else "SUCCEEDED"
                        for d in DATES
                    }
                    shown = statuses_by_date(check)
                    assert {d: shown.get(d, "MISSING") for d in expected} == expected, (asset, name)
            assert ui.checks("public_bidding_flowers")["schema_conforms"]["blocking"] is True

            # Per-date blocking: the good dates loaded, the blocked one kept its previous version.
            for day in DATES:
                if day == BLOCKED:
                    for asset in ASSETS[1:]:
                        assert after[asset].get(day) == before[asset].get(day), asset
                else:
                    assert len(after["bidding_flowers"].get(day, [])) == len(
                        after["public_bidding_flowers"].get(day, [])
                    ), day
            assert {r[2] for r in after["bidding_flowers"][WARNED]} >= {11000}

            # Execute one check for one date, as the UI's Execute does: a current result.
            check = ui.checks("bidding_flowers")["prices_ordered"]
            rerun = ui.launch(
                check["jobNames"][0],
                {"dagster/partition": WARNED.isoformat()},
                [("bidding_flowers", "prices_ordered")],
                [],
            )
            assert ui.wait_for_run(rerun) == "SUCCESS"
            (latest,) = ui.query(
                """query($partition: String) { assetCheckExecutions(
                    assetKey: {path: ["bidding_flowers"]}, checkName: "prices_ordered",
                    partition: $partition, limit: 1) { runId status
                    evaluation { targetMaterialization { runId } } } }""",
                partition=WARNED.isoformat(),
            )["assetCheckExecutions"]
            assert latest["runId"] == rerun and latest["status"] == "FAILED"
            assert latest["evaluation"]["targetMaterialization"]["runId"] == second_run
            assert (
                statuses_by_date(ui.checks("bidding_flowers")["prices_ordered"])[WARNED.isoformat()]
                == "FAILED"
            )

            # CLI runs are listed where users look: under flower_auction_job.
            runs = ui.query(
                """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
                    ... on Pipeline { runs(limit: 20) { runId } } } }""",
                selector={
                    "pipelineName": "flower_auction_job",
                    "repositoryName": REPOSITORY,
                    "repositoryLocationName": LOCATION,
                },
            )["pipelineOrError"]["runs"]
            assert {first_run, second_run} <= {r["runId"] for r in runs}

        # An unchanged single-date re-run: nothing skipped, nothing stale, all checks current.
        third_run = cli(env, RERUN, RERUN)
        with webserver(env, tmp_path / "webserver2.log") as ui:
            steps = ui.query(
                """query($id: ID!) { runOrError(runId: $id) { ... on Run {
                    stepStats { stepKey status } } } }""",
                id=third_run,
            )["runOrError"]["stepStats"]
            assert {s["status"] for s in steps} == {"SUCCESS"}, steps
            for asset in ASSETS:
                shown = ui.materialization_metadata(asset, RERUN.isoformat())
                assert shown["__run_id"] == third_run and shown["content_changed"] is False
                stale = ui.query(
                    """query($key: AssetKeyInput!, $p: String!) { assetNodeOrError(assetKey: $key) {
                        ... on AssetNode { staleStatus(partition: $p) } } }""",
                    key={"path": [asset]},
                    p=RERUN.isoformat(),
                )["assetNodeOrError"]["staleStatus"]
                assert stale == "FRESH", asset
                for name, check in ours(ui, asset).items():
                    assert statuses_by_date(check)[RERUN.isoformat()] == "SUCCEEDED", (asset, name)
