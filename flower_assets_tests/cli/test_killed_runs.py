"""A killed run never blocks the flower_api pool; a waiting run says for whom it waits."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets_tests.conftest import TEST_KEY
from flower_assets_tests.webui import BIN, REPO, clean_env, embedded_home

pytestmark = pytest.mark.slow


def slowly(_params: dict[str, str], _n: int) -> None:
    time.sleep(0.25)  # every answer takes a while: the first run holds the pool long enough
    return None


def cli(env: dict[str, str], first: str, last: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [BIN / "flower-assets", "materialize", "--from", first, "--to", last],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_for(condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def setup(tmp_path):
    home = embedded_home(tmp_path / "dagster_home")
    with FakeAtServer(lambda day, category: day_items(day, category), fault=slowly) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
        )
        yield env, server, tmp_path, home


def test_a_run_killed_while_holding_the_pool_does_not_block_the_next_run(setup, monkeypatch):
    env, server, tmp_path, home = setup
    first = cli(env, "2024-03-01", "2024-03-20", tmp_path / "first.log")
    wait_for(lambda: len(server.requests) >= 6)  # the raw step holds the pool slot now
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    began = time.monotonic()
    second = cli(env, "2024-04-01", "2024-04-01", tmp_path / "second.log")
    assert second.wait(timeout=180) == 0, (tmp_path / "second.log").read_text()[-3000:]
    waited = time.monotonic() - began
    said = (tmp_path / "second.log").read_text()
    assert "gone (killed or crashed)" in said and "marked failed" in said
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        auction_runs = instance.get_runs(dg.RunsFilter(job_name="flower_auction_job"))
        statuses = [r.status for r in auction_runs]
    assert statuses.count(dg.DagsterRunStatus.FAILURE) == 1
    assert statuses.count(dg.DagsterRunStatus.SUCCESS) == 1
    assert waited < 120


def test_a_run_waiting_for_the_pool_says_for_whom_and_stops_on_ctrl_c(setup):
    env, server, tmp_path, _ = setup
    first = cli(env, "2024-03-01", "2024-03-10", tmp_path / "first.log")
    try:
        wait_for(lambda: len(server.requests) >= 2)
        second = cli(env, "2024-04-01", "2024-04-01", tmp_path / "second.log")
        wait_for(lambda: "Waiting for pool flower_api" in (tmp_path / "second.log").read_text())
        said = (tmp_path / "second.log").read_text()
        assert "held by run" in said and "flower_auction_job" in said and "Ctrl-C" in said
        second.send_signal(signal.SIGINT)
        assert second.wait(timeout=20) != 0  # stopped, not hanging
        assert "Stopped while waiting" in (tmp_path / "second.log").read_text()
    finally:
        first.kill()
        first.wait()
