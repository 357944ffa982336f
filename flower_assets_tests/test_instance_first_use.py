"""First use is safe when two commands start at once (issue 17, item 5).

Dagster creates its SQLite storages (runs, event log, schedules) when a process first opens a new
instance, and two processes doing that at once used to corrupt it: runs.db or schedules.db with
two alembic_version rows (every later command then fails with "more than one head present"), or
one process killed by `UNIQUE constraint failed` / `table secondary_indexes already exists`.
These tests start real processes on brand-new instance homes, several trials each; an instance
damaged that way (as older code left it) gets a one-line message that says how to repair it.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

from flower_assets import settings
from flower_assets.check_state_checkpoint import CHECKPOINTS
from flower_assets_tests.webui import clean_env

from .conftest import REPO

BIN = Path(sys.executable).parent
TRIALS = 5
DATE, NEXT_DATE = "2024-05-10", "2024-05-11"  # sample days bundled with the package
# The second alembic_version row the race left in runs.db and schedules.db next to the head:
# Dagster's LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION, stamped by the process that found the
# other's tables but not yet its version row.
RACE_REVISION = "5771160a95ad"
pytestmark = pytest.mark.slow


def storage_files(home: Path) -> dict[str, Path]:
    """The SQLite files of the repo's dagster.yaml, by storage."""
    return {
        "runs": home / "history" / "runs.db",
        "event log": home / "event_log.db",
        "schedules": home / "schedules" / "schedules.db",
    }


def read_db(db: Path) -> tuple[list[str], set[str], str]:
    """(alembic_version rows, table names, integrity check) of a SQLite file."""
    with closing(sqlite3.connect(db)) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        versions = (
            [v for (v,) in conn.execute("SELECT version_num FROM alembic_version")]
            if "alembic_version" in tables
            else []
        )
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return versions, tables, integrity


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[str, dict[str, set[str]]]:
    """A new instance of the repo's dagster.yaml made by one process alone: Dagster's head
    schema revision and each storage's tables."""
    home = tmp_path_factory.mktemp("reference")
    overrides = settings.local_instance_config(REPO / "dagster.yaml", home)
    with dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance:
        head = instance.run_storage.alembic_version()[1]
    return head, {name: read_db(db)[1] for name, db in storage_files(home).items()}


# The event log's table of check-state checkpoints is created on the first checkpoint (a command
# that ran runs writes one when it ends), not with the instance.
CREATED_ON_FIRST_USE = {CHECKPOINTS.name, f"sqlite_autoindex_{CHECKPOINTS.name}_1"}


def assert_created_once(home: Path, reference: tuple[str, dict[str, set[str]]]) -> None:
    """Every storage as one process alone creates it: its tables, one version row, intact."""
    head, tables = reference
    for name, db in storage_files(home).items():
        versions, found, integrity = read_db(db)
        if name == "event log":
            found -= CREATED_ON_FIRST_USE
        assert integrity == "ok", f"{db}: {integrity}"
        assert found == tables[name], f"{db}: {sorted(found ^ tables[name])}"
        if name == "event log":
            # Dagster 1.13 never commits the version stamp of its consolidated SQLite log: a new
            # one has no row. It must not have two.
            assert versions in ([], [head]), f"{db}: {versions}"
        else:
            assert versions == [head], f"{db}: {versions}"


def new_instance(tmp_path: Path, trial: int) -> tuple[Path, Path, dict[str, str]]:
    """(working directory, instance home, environment): even trials the repo-root default
    ./.dagster_home, odd ones a DAGSTER_HOME holding only the repo's dagster.yaml."""
    cwd = tmp_path / "repo"
    cwd.mkdir()
    if trial % 2 == 0:
        shutil.copy(REPO / "dagster.yaml", cwd / "dagster.yaml")
        return cwd, cwd / ".dagster_home", clean_env()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return cwd, home, clean_env(DAGSTER_HOME=str(home))


def materialize(cwd: Path, env: dict[str, str], day: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [BIN / "flower-assets", "materialize", "--from", day, "--to", day],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.parametrize("trial", range(TRIALS))
def test_two_materialize_commands_started_at_once_on_a_new_instance_both_succeed(
    trial, tmp_path, reference
):
    cwd, home, env = new_instance(tmp_path, trial)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    both = [materialize(cwd, env, DATE, log) for log in logs]
    codes = [process.wait(timeout=300) for process in both]
    for code, log in zip(codes, logs, strict=True):
        assert code == 0, log.read_text()[-3000:]

    assert_created_once(home, reference)
    third = materialize(cwd, env, NEXT_DATE, tmp_path / "third.log")
    assert third.wait(timeout=300) == 0, (tmp_path / "third.log").read_text()[-3000:]
    assert_created_once(home, reference)


# What a daemon, the webserver or `dagster asset materialize` does first: open $DAGSTER_HOME's
# instance. Both processes import everything, then open it at the same moment (a file appears),
# then use every storage.
OPEN_THE_INSTANCE = """
import sys, time
from pathlib import Path
import dagster as dg
import flower_assets.instance_storage

ready, go, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ready.touch()
while not go.exists():
    time.sleep(0.001)
with dg.DagsterInstance.get() as instance:
    instance.report_runless_asset_event(dg.AssetMaterialization("blooms", partition=name))
    assert instance.get_runs() == []
    assert instance.all_instigator_state() == []
    instance.get_daemon_heartbeats()
print("opened")
"""


@pytest.mark.parametrize("trial", range(TRIALS))
def test_two_processes_creating_the_instance_at_once_both_succeed(
    trial, tmp_path, monkeypatch, reference
):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = clean_env(DAGSTER_HOME=str(home))
    go = tmp_path / "go"
    processes = []
    for name in ("a", "b"):
        ready = tmp_path / f"{name}.ready"
        command = [sys.executable, "-c", OPEN_THE_INSTANCE, str(ready), str(go), name]
        processes.append(
            (
                ready,
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=tmp_path,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                ),
            )
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in processes):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.01)
    go.touch()
    for _, process in processes:
        output = process.communicate(timeout=120)[0]
        assert process.returncode == 0 and "opened" in output, output[-3000:]

    assert_created_once(home, reference)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("blooms")) == {"a", "b"}


def test_a_process_waiting_for_the_lock_says_for_what_and_creates_nothing_meanwhile(tmp_path):
    from flower_assets.instance_storage import creating

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    log = tmp_path / "opener.log"
    opener_code = "import dagster as dg\nwith dg.DagsterInstance.get():\n    print('opened')\n"
    expected = (
        f"waiting for another process (pid {os.getpid()}) to finish creating the Dagster "
        f"instance in {home}"
    )
    with creating(str(home)):
        opener = subprocess.Popen(
            [sys.executable, "-c", opener_code],
            env=clean_env(DAGSTER_HOME=str(home)),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while expected not in log.read_text():
            assert opener.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert not list(home.rglob("*.db"))
    assert opener.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert "opened" in log.read_text()
    assert {path.name for path in home.rglob("*.db")} == {"runs.db", "event_log.db", "schedules.db"}


def run_cli(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "flower-assets", "materialize", "--from", DATE, "--to", DATE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def repair_command(done: subprocess.CompletedProcess) -> str:
    """The one line the CLI said, which ends with the command that repairs the instance."""
    assert done.returncode not in (0, None), done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    found = re.search(r"Repair it with: (.+)$", lines[0])
    assert found, lines[0]
    return found.group(1)


def run_repair(command: str) -> None:
    if command.startswith("sqlite3 ") and shutil.which("sqlite3") is None:
        db, sql = re.fullmatch(r'sqlite3 (\S+) "(.+)"', command).groups()
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(sql)
        return
    subprocess.run(command, shell=True, check=True)


def a_created_instance(tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get():
        pass
    return home, clean_env(DAGSTER_HOME=str(home))


def assert_usable(home: Path) -> None:
    """The instance opens again, every storage answers (DAGSTER_HOME is `home` already)."""
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("blooms"))
        assert instance.get_latest_materialization_event(dg.AssetKey("blooms")) is not None
        assert instance.get_runs() == [] and instance.all_instigator_state() == []


@pytest.mark.parametrize("storage", ["runs", "schedules"])
def test_a_storage_with_two_schema_versions_gets_a_one_line_repair_message(
    storage, tmp_path, monkeypatch, reference
):
    home, env = a_created_instance(tmp_path, monkeypatch)
    db = storage_files(home)[storage]
    with closing(sqlite3.connect(db)) as conn, conn:  # what the race left behind
        conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (RACE_REVISION,))

    done = run_cli(tmp_path, env)
    command = repair_command(done)
    message = done.stderr.strip()
    assert str(db) in message and "alembic_version" in message, message
    assert command.startswith(f"sqlite3 {db} "), command

    run_repair(command)
    assert_created_once(home, reference)
    assert_usable(home)


def test_a_half_created_event_log_gets_a_one_line_repair_message(tmp_path, monkeypatch, reference):
    home, env = a_created_instance(tmp_path, monkeypatch)
    # A first command stopped while it created the event log: the file is there, its tables not.
    db = storage_files(home)["event log"]
    for leftover in home.glob("event_log.db*"):
        leftover.unlink()
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE event_logs (id INTEGER PRIMARY KEY)")

    done = run_cli(tmp_path, env)
    command = repair_command(done)
    message = done.stderr.strip()
    assert str(db) in message and "half-created" in message, message

    run_repair(command)
    assert_usable(home)
    assert_created_once(home, reference)
