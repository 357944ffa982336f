"""A blocked date fails the run, and every command that ran it, after the other dates loaded.

A schema-drifting answer (cut flowers with `lv` instead of `lvNm`) is stored but blocked: the
normalized tables keep their previous version of the date. Every other date of the run loads;
then the run ends FAILURE through the check `auction_date_loaded`, naming the date and its
cause. `flower-assets materialize`, `dagster asset materialize` and `dagster job execute` all exit
non-zero, and no run retry re-runs it behind the command's back.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml

from flower_assets.sample.days import sample_rows
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.source.categories import Category
from flower_assets.steps.report import dates_between
from flower_assets.transform.unchanged import not_loaded
from flower_assets.warehouse.database import Warehouse
from flower_assets_tests.conftest import TEST_KEY
from flower_assets_tests.webui import BIN, clean_env, embedded_home

pytestmark = pytest.mark.slow
DAGSTER, MODULE = [BIN / "dagster"], ["-m", "flower_assets"]

FIRST, LAST = date(2024, 4, 18), date(2024, 4, 25)  # 8 dates, Thursday to Thursday
BLOCKED = date(2024, 4, 22)  # a Monday with cut flowers


def drifting(day: date, category: Category) -> list[dict]:
    rows = sample_rows(day, category)
    if (day, category) == (BLOCKED, Category.CUT_FLOWERS):
        return [{("lv" if k == "lvNm" else k): v for k, v in row.items()} for row in rows]
    return rows


@pytest.fixture
def setup(tmp_path):
    """Instance (run retries on, as deploy/postgres has them), warehouse and the fake aT server."""
    home = embedded_home(tmp_path / "dagster_home")
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    config["run_retries"] = {"enabled": True, "max_retries": 2}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    warehouse = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    with FakeAtServer(drifting) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=warehouse,
        )
        yield env, tmp_path, home, warehouse


def command(argv: list, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def materialize(env, cwd, first: date, last: date) -> subprocess.CompletedProcess:
    return command(
        [BIN / "flower-assets", "materialize", "--from", str(first), "--to", str(last)], env, cwd
    )


def auction_runs(home: Path, monkeypatch) -> list[dg.DagsterRun]:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_runs(filters=dg.RunsFilter(job_name="flower_auction_job")))


def summary(done: subprocess.CompletedProcess) -> str:
    return done.stdout[done.stdout.index("Summary of auction dates") :]


def assert_names_the_blocked_date(done: subprocess.CompletedProcess, asked: int) -> None:
    said = summary(done)
    assert "  blocked       1 " in said, said
    line = next(line for line in said.splitlines() if line.strip().startswith(str(BLOCKED)))
    assert "blocked" in line and "schema_conforms" in line, line
    # One line on stderr says the command failed and why; never a traceback.
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"flower-assets materialize: 1 of {asked} auction dates not loaded (1 blocked); "
        "see the summary above."
    ), done.stderr


def assert_failed_without_retry(run: dg.DagsterRun) -> None:
    assert run.status == dg.DagsterRunStatus.FAILURE
    # With run retries on, Dagster decides at the failure whether the daemon re-runs it: never.
    assert run.tags.get("dagster/will_retry") == "false", run.tags


def test_a_blocked_single_date_fails_the_run_and_every_command(setup, monkeypatch):
    env, tmp_path, home, _ = setup
    done = materialize(env, tmp_path, BLOCKED, BLOCKED)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert_names_the_blocked_date(done, 1)
    (run,) = auction_runs(home, monkeypatch)
    assert_failed_without_retry(run)

    # Dagster's own commands fail on it too.
    with dg.DagsterInstance.get() as instance:
        ours = {r.run_id for r in instance.get_runs()}
    partition = str(BLOCKED)
    tags = json.dumps({"dagster/partition": partition})
    asset = command(
        [*DAGSTER, "asset", "materialize", *MODULE, "--select", "*", "--partition", partition],
        env,
        tmp_path,
    )
    assert asset.returncode != 0, asset.stdout[-2000:] + asset.stderr[-2000:]
    job = command(
        [*DAGSTER, "job", "execute", *MODULE, "-j", "flower_auction_job", "--tags", tags],
        env,
        tmp_path,
    )
    assert job.returncode != 0, job.stdout[-2000:] + job.stderr[-2000:]
    with dg.DagsterInstance.get() as instance:
        theirs = [r for r in instance.get_runs() if r.run_id not in ours]
    assert sorted(r.job_name for r in theirs) == ["__ASSET_JOB", "flower_auction_job"]
    assert all(r.status == dg.DagsterRunStatus.FAILURE for r in theirs)


def test_a_blocked_date_inside_a_range_fails_the_run_after_the_others_loaded(setup, monkeypatch):
    env, tmp_path, home, warehouse = setup
    done = materialize(env, tmp_path, FIRST, LAST)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert_names_the_blocked_date(done, 8)
    said = summary(done)
    assert "  loaded        7 " in said and "  failed        0 " in said, said

    days = dates_between(FIRST, LAST)
    with Warehouse.open(warehouse) as wh:
        assert set(not_loaded(days, *wh.batch_logs(FIRST, LAST))) == {BLOCKED}
    with sqlite3.connect(warehouse.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT DISTINCT auction_date FROM bidding_flowers").fetchall()
    traded = {d for d in days if d != BLOCKED and any(sample_rows(d, c) for c in Category)}
    assert {date.fromisoformat(day) for (day,) in rows} == traded

    (run,) = auction_runs(home, monkeypatch)
    assert_failed_without_retry(run)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        failures = [
            record.event_log_entry.dagster_event.event_specific_data.error.message
            for record in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            ).records
        ]
    assert len(failures) == 1 and str(BLOCKED) in failures[0], failures
