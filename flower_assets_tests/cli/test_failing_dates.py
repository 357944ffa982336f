"""A date that fails holds back no other: the rest of the range loads through the market tables,
the run ends failed naming each failed date and its cause, and a re-run after the fault clears
asks the API only for the dates still missing."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date

import dagster as dg
import pytest

from flower_assets.sample.days import envelope, sample_rows
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.categories import Category
from flower_assets.steps.market import MarketHistory
from flower_assets.steps.report import dates_between
from flower_assets.transform.unchanged import not_loaded
from flower_assets.warehouse.database import Warehouse
from flower_assets_tests.cli.test_cli import BIN, REPO, clean_env, summary
from flower_assets_tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow

FIRST, LAST = date(2024, 4, 15), date(2024, 4, 24)
REFUSED = date(2024, 4, 16)  # foliage answers resultCd 99
UNAVAILABLE = date(2024, 4, 17)  # cut flowers answer HTTP 500 on every try
DRIFTED = date(2024, 4, 22)  # cut flowers come with `lv` instead of `lvNm`: blocked
FAILING = {REFUSED, UNAVAILABLE, DRIFTED}


class Faults:
    def __init__(self) -> None:
        self.on = True

    def rows_for(self, day: date, category: Category) -> list[dict]:
        rows = sample_rows(day, category)
        if self.on and (day, category) == (DRIFTED, Category.CUT_FLOWERS):
            return [{("lv" if k == "lvNm" else k): v for k, v in row.items()} for row in rows]
        return rows

    def fault(self, params: dict[str, str], number: int) -> Reply | None:
        if not self.on:
            return None
        day, gubn = date.fromisoformat(params["baseDate"]), params["flowerGubn"]
        if (day, gubn) == (REFUSED, Category.FOLIAGE.code):
            return Reply(body=envelope("99", "시스템 오류", []))
        if (day, gubn) == (UNAVAILABLE, Category.CUT_FLOWERS.code):
            return Reply(status=500, body=b"<html>Internal Server Error</html>")
        return None


def materialize(tmp_path, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "flower-assets", "materialize", "--from", str(FIRST), "--to", str(LAST)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_three_failing_dates_hold_back_none_of_the_other_seven(
    warehouse_url, tmp_path, monkeypatch
):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    faults = Faults()
    with FakeAtServer(faults.rows_for, fault=faults.fault) as server:
        env = clean_env(
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=warehouse_url,
        )
        done = materialize(tmp_path, env)
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
        # The summary names each date not loaded with its cause, and only those.
        counts, causes = summary(done.stdout)
        assert counts == {"loaded": 7, "unchanged": 0, "blocked": 1, "failed": 2}, done.stdout
        assert sorted(causes) == sorted(str(day) for day in FAILING)
        assert "resultCd 99" in causes[str(REFUSED)]
        assert "500" in causes[str(UNAVAILABLE)]
        assert "the answer is blocked" in causes[str(DRIFTED)]
        assert "schema_conforms" in causes[str(DRIFTED)]

        with Warehouse.open(warehouse_url) as wh:
            days = dates_between(FIRST, LAST)
            assert set(not_loaded(days, *wh.batch_logs(FIRST, LAST))) == FAILING
            # The other seven are complete through the market tables.
            history = MarketHistory.read(wh, None)
            assert history.stale() == []
            traded = {day for day in history.current if FIRST <= day <= LAST}
            assert traded == {d for d in days if d not in FAILING and sample_day_traded(d)}

        # The auction run ended FAILURE, its error naming the three dates.
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".dagster_home"))
        with dg.DagsterInstance.get() as instance:
            (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="flower_auction_job"))
            assert run.status == dg.DagsterRunStatus.FAILURE
            failure = next(
                record.event_log_entry.dagster_event
                for record in instance.get_records_for_run(
                    run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
                ).records
            )
            message = failure.event_specific_data.error.message
            assert all(str(day) in message for day in FAILING), message

        # The fault clears: a re-run completes just the missing dates.
        faults.on = False
        server.requests.clear()
        again = materialize(tmp_path, env)
        assert again.returncode == 0, again.stderr[-3000:]
        # The seven dates loaded before are unchanged: nothing is rewritten.
        counts, _ = summary(again.stdout)
        assert counts == {"loaded": 3, "unchanged": 7, "blocked": 0, "failed": 0}, again.stdout
        asked = {date.fromisoformat(r["baseDate"]) for r in server.requests}
        assert asked == FAILING


def sample_day_traded(day: date) -> bool:
    return any(sample_rows(day, category) for category in Category)
