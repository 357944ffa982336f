"""Instance files follow DAGSTER_HOME: all under it, whatever the working directory.

With DAGSTER_HOME unset, `flower-assets` keeps the repo-root default: ./.dagster_home,
configured by ./dagster.yaml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from .conftest import REPO

BIN = Path(sys.executable).parent
DATE = "2024-05-10"  # one of the sample days bundled with the package
pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    env["DAGSTER_DISABLE_TELEMETRY"] = "yes"
    env.update(extra)
    return env


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def materialize_one_date(cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [BIN / "flower-assets", "materialize", "--from", DATE, "--to", DATE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def assert_holds_the_run(instance: dg.DagsterInstance) -> None:
    """One successful run of each job (auction tables, market tables, report), its events in the
    one consolidated log the alert sensor reads."""
    runs = instance.get_runs()
    assert sorted(run.job_name for run in runs) == [
        "flower_auction_job",
        "flower_market_job",
        "flower_report_job",
    ]
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert not instance.event_log_storage.is_run_sharded
    materialized = instance.get_materialized_partitions(dg.AssetKey("bidding_flowers"))
    assert materialized == {DATE}


def assert_instance_files(files: set[str]) -> None:
    """Dagster's databases, the run's compute logs and the warehouse are all there."""
    assert "flower_warehouse.sqlite" in files
    assert {"runs.db", "event_log.db"} <= {Path(f).name for f in files}, sorted(files)
    assert any(f.endswith((".out", ".err", ".complete")) for f in files), sorted(files)


def test_with_dagster_home_set_every_instance_file_lands_under_it(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    cwd.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # as an operator would
    materialize_one_date(cwd, clean_env(DAGSTER_HOME=str(home)))

    assert files_under(cwd) == set(), "written relative to the working directory"
    assert not any(cwd.iterdir())
    assert_instance_files(files_under(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert_holds_the_run(instance)


def test_without_dagster_home_the_repo_root_default_holds_everything(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "dagster.yaml", root / "dagster.yaml")
    materialize_one_date(root, clean_env())

    assert {path.name for path in root.iterdir()} == {"dagster.yaml", ".dagster_home"}
    assert_instance_files(files_under(root / ".dagster_home"))
    # Read back the way the CLI opens it: ./.dagster_home, configured by ./dagster.yaml.
    from flower_assets.cli import local_instance

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(root)
    with local_instance() as instance:
        assert_holds_the_run(instance)
    assert {path.name for path in root.iterdir()} == {"dagster.yaml", ".dagster_home"}
    # It is a Dagster home of its own (a copy of ./dagster.yaml in it), so Dagster's commands
    # open the same instance: `DAGSTER_HOME=$PWD/.dagster_home uv run dagster dev`.
    home = root / ".dagster_home"
    assert (home / "dagster.yaml").read_text() == (root / "dagster.yaml").read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert_holds_the_run(instance)


@dg.op
def say_hello() -> None:
    print("hello")  # captured: a compute log file


@dg.job
def hello() -> None:
    say_hello()


def test_production_profile_keeps_its_local_files_under_dagster_home(
    tmp_path, monkeypatch, dagster_postgres_url
):
    """deploy/postgres/dagster.yaml: runs and events in PostgreSQL, compute logs under the home."""
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    cwd.mkdir()
    shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    url = dagster_postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    monkeypatch.chdir(cwd)
    with dg.DagsterInstance.get() as instance:
        assert hello.execute_in_process(instance=instance).success
        assert Path(instance.root_directory).resolve() == home.resolve()

    assert not any(cwd.iterdir()), "written relative to the working directory"
    files = files_under(home)
    assert any(f.endswith((".out", ".err", ".complete")) for f in files), sorted(files)
    assert not {Path(f).suffix for f in files} & {".db", ".sqlite"}, sorted(files)
