"""A calm command: progress and one summary on the terminal, Dagster's step lines in a log file,
a live line on a terminal, and Ctrl-C that stops the command (exit code 130) without a traceback."""

from __future__ import annotations

import os
import pty
import re
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import date
from types import SimpleNamespace

import dagster as dg
import pytest

from flower_assets.cli import Progress, runs
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets_tests.cli.test_cli import summary
from flower_assets_tests.conftest import TEST_KEY
from flower_assets_tests.webui import BIN, clean_env, embedded_home

DAGSTER_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - ", re.M)


def test_progress_says_dates_done_time_taken_and_an_estimate_of_the_rest():
    progress = Progress(total=200)
    assert progress.status().startswith("0 of 200 dates done, ")
    assert "left" not in progress.status()  # nothing to estimate from yet
    progress.began -= 30
    progress.done = 100
    assert progress.status() == "100 of 200 dates done, 30 s elapsed, about 30 s left"
    progress.began -= 3570
    assert progress.status() == "100 of 200 dates done, 1 h 00 min elapsed, about 1 h 00 min left"
    progress.done = 200
    assert "left" not in progress.status()


@pytest.fixture
def home(tmp_path):
    return embedded_home(tmp_path / "dagster_home")


def cli(tmp_path, home, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "flower-assets", "materialize", *args],
        cwd=tmp_path,
        env=clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_dagsters_step_lines_go_to_a_log_file_unless_verbose(tmp_path, home):
    done = cli(tmp_path, home, "--from", "2024-05-09", "--to", "2024-05-10")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # Nothing reads as an error: nothing on stderr, no Dagster line on the terminal.
    assert done.stderr == ""
    assert not DAGSTER_LINE.search(done.stdout), done.stdout
    assert len(done.stdout.splitlines()) <= 32, done.stdout
    log = home / "logs"
    (path,) = log.iterdir()
    assert f"Dagster's log of the runs: {path}  (--verbose shows it here)" in done.stdout
    logged = path.read_text()
    # The steps' lines, e.g. the raw step's line of each date.
    assert len(DAGSTER_LINE.findall(logged)) >= 3, logged[:2000]
    assert " - flower_auction - 2024-05-10: " in logged, logged[:2000]
    assert "\x1b[" not in logged  # no terminal colours in a file
    # No warning that is not real: sample mode is the only one of a sample run.
    warnings = [line for line in logged.splitlines() if " - WARNING - " in line]
    assert all("Sample mode" in line for line in warnings), warnings
    # Each run's line: its id, dates, outcome, time taken, dates done of the total.
    line = next(line for line in done.stdout.splitlines() if line.startswith("Run 1/1 "))
    assert re.fullmatch(
        r"Run 1/1 \S+ \(2024-05-09 to 2024-05-10, 2 dates\) succeeded in \d+ s · "
        r"2 of 2 dates done, \d+ s elapsed",
        line,
    ), line
    run_id = line.split()[2]
    assert run_id in logged
    counts, _ = summary(done.stdout)
    assert counts == {"loaded": 2, "unchanged": 0, "blocked": 0, "failed": 0}
    # The check states the UI shows are stored up to date: its first view computes nothing.
    with sqlite3.connect(home / "event_log.db") as db:
        kept = {name for (name,) in db.execute("SELECT check_name FROM flower_asset_check_state")}
    assert {"schema_conforms", "auction_date_loaded", "chain_consistent"} <= kept, kept

    # --verbose: Dagster's lines on the terminal (stderr), no log file.
    verbose = cli(tmp_path, home, "--from", "2024-05-10", "--to", "2024-05-10", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert " - flower_auction - 2024-05-10: " in verbose.stderr, verbose.stderr[-2000:]
    assert "Dagster's log of the runs" not in verbose.stdout
    assert len(list(log.iterdir())) == 1
    # The same answers again: nothing rewritten.
    assert summary(verbose.stdout)[0]["unchanged"] == 1


def slowly(_params: dict[str, str], _n: int) -> None:
    time.sleep(0.25)  # every answer takes a while: the run is under way for seconds
    return None


@pytest.mark.slow
def test_ctrl_c_ends_the_run_under_way_and_the_command(tmp_path, home, monkeypatch):
    with FakeAtServer(lambda day, category: day_items(day, category), fault=slowly) as server:
        env = clean_env(
            DAGSTER_HOME=str(home),
            FLOWER_API_KEY=TEST_KEY,
            FLOWER_API_BASE_URL=server.url,
            FLOWER_DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
        )
        # stdout is a terminal: the command shows a live line while the run is under way.
        main, child = pty.openpty()
        process = subprocess.Popen(
            [BIN / "flower-assets", "materialize", "--from", "2024-03-01", "--to", "2024-03-20"],
            cwd=tmp_path,
            env=env,
            stdout=child,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(child)
        shown: list[bytes] = []

        def read() -> None:
            while True:
                try:
                    chunk = os.read(main, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                shown.append(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while re.search(rb"Run 1/1 \S+ running for", b"".join(shown)) is None:
            assert time.monotonic() < deadline and process.poll() is None, b"".join(shown)
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        err = process.stderr.read()
        assert process.wait(timeout=60) == 130, err
        reader.join(timeout=5)
        os.close(main)
    terminal = b"".join(shown).decode()
    assert "\r\x1b[KRun 1/1 " in terminal and "running for" in terminal, terminal
    assert "Traceback" not in err + terminal
    (line,) = err.strip().splitlines()
    assert line.startswith("Stopped (Ctrl-C): run ") and "was interrupted" in line, err

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()  # nothing after the auction run was started
        assert run.job_name == "flower_auction_job" and run.run_id in line
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert runs.holders(instance, "flower_api") == set()  # its pool slot is free


def test_failed_warning_checks_are_counted_in_the_summary_not_as_errors(capsys):
    from flower_assets import cli

    def evaluation(check: str, passed: bool, severity: dg.AssetCheckSeverity) -> object:
        data = dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("bidding_flowers"),
            check_name=check,
            passed=passed,
            severity=severity,
        )
        return SimpleNamespace(
            event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, event_specific_data=data
        )

    result = SimpleNamespace(
        all_events=[
            evaluation("price_anomalies", False, dg.AssetCheckSeverity.WARN),
            evaluation("price_anomalies", False, dg.AssetCheckSeverity.WARN),
            evaluation("price_anomalies", True, dg.AssetCheckSeverity.WARN),
            evaluation("prices_ordered", False, dg.AssetCheckSeverity.ERROR),
        ]
    )
    warnings = cli._check_warnings(result)
    assert warnings == {"price_anomalies": 2}
    days = [date(2024, 5, 9), date(2024, 5, 10)]
    dates = {"loaded": dict.fromkeys(days, ""), "unchanged": {}, "blocked": {}, "failed": {}}
    cli._print_summary(cli.Console(verbose=True), days, dates, [], warnings)
    said = capsys.readouterr()
    assert said.err == ""
    assert said.out.splitlines()[-1] == (
        "  check warnings (dates loaded all the same; see each asset's Checks in the UI): "
        "price_anomalies 2"
    )
