"""Backup and restore as docs/deploy.md says, proven by finding every row again.

PostgreSQL: two databases and two roles made by deploy/postgres/init-databases.sh itself, a
warehouse and a Dagster instance (deploy/postgres/dagster.yaml) filled by real runs of sample
dates, dumped with the page's `pg_dump -Fc` commands (instance first), dropped and restored with
its `pg_restore --create` commands. Every table of both databases then has the same rows, the
databases the same owners and permissions, Dagster opens the instance and shows the same runs
and materializations, and `flower-assets db upgrade` finds the warehouse current.

SQLite (embedded mode): the page's two procedures (the `sqlite3 .backup` loop while runs go on
and its restore loop; a copy of the whole directory while nothing runs, restored whole), run by
bash as written, bring back every row of the four database files after later runs changed them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import psycopg2
import pytest

from flower_assets_tests.conftest import POSTGRES_ADMIN_URL, REPO, materialize, postgres_admin

PAGE = REPO / "docs" / "deploy.md"
COMPOSE = "docker-compose -f deploy/compose.yaml exec -T postgres "
DAYS = ["2024-05-08", "2024-05-10"]
LATER_DAY = "2024-05-13"
SQLITE_FILES = ("history/runs.db", "event_log.db", "schedules/schedules.db")
WAREHOUSE_FILE = "flower_warehouse.sqlite"
# A table's rows in a stable order, as text, digested.
DIGEST = (
    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
    'FROM "{table}" t'
)


def page_commands() -> list[str]:
    """The shell lines of the page's code blocks."""
    lines, in_code = [], False
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif in_code:
            lines.append(line)
    return lines


def page_block(first_line: str) -> str:
    """The code block of the page that starts with `first_line`."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


def documented(command: str) -> list[str]:
    """A command of the page, run in the postgres container there, as argv for this host."""
    (line,) = [line for line in page_commands() if line.startswith(COMPOSE + command)]
    return line.removeprefix(COMPOSE).split("#")[0].split()


# -- PostgreSQL ------------------------------------------------------------------------------------


def pg_env() -> dict[str, str]:
    """libpq's environment for the test server, so the page's commands run unchanged."""
    url = urlsplit(POSTGRES_ADMIN_URL)
    return {
        **os.environ,
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
    }


def url_of(database: str, user: str, driver: str = "postgresql") -> str:
    url = urlsplit(POSTGRES_ADMIN_URL)
    return f"{driver}://{user}@{url.hostname}:{url.port or 5432}/{database}"


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    """Throw-away `dagster` and `flower` databases and roles, as the compose postgres makes them."""
    suffix = uuid.uuid4().hex[:10]
    names = {
        "DAGSTER_DB": f"bk_dagster_{suffix}",
        "DAGSTER_DB_USER": f"bk_dagster_{suffix}",
        "DAGSTER_DB_PASSWORD": uuid.uuid4().hex,
        "FLOWER_DB": f"bk_flower_{suffix}",
        "FLOWER_DB_USER": f"bk_flower_{suffix}",
        "FLOWER_DB_PASSWORD": uuid.uuid4().hex,
    }
    conn = postgres_admin()
    try:
        subprocess.run(
            ["sh", str(REPO / "deploy" / "postgres" / "init-databases.sh")],
            env={**pg_env(), **names, "POSTGRES_USER": pg_env()["PGUSER"]},
            check=True,
            capture_output=True,
        )
        yield names
    finally:
        with conn.cursor() as cursor:
            for key in ("DAGSTER_DB", "FLOWER_DB"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{names[key]}" WITH (FORCE)')
            for key in ("DAGSTER_DB_USER", "FLOWER_DB_USER"):
                cursor.execute(f'DROP ROLE IF EXISTS "{names[key]}"')
        conn.close()


def pg_contents(database: str) -> dict[str, tuple[int, str]]:
    """Every table of the database: its row count and a digest of its rows in a stable order."""
    conn = psycopg2.connect(url_of(database, pg_env()["PGUSER"]))
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            tables = sorted(row[0] for row in cursor.fetchall())
            contents = {}
            for table in tables:
                cursor.execute(DIGEST.format(table=table))
                contents[table] = cursor.fetchone()
            return contents
    finally:
        conn.close()


def pg_database_properties(database: str) -> tuple:
    conn = postgres_admin()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_userbyid(datdba), ARRAY(SELECT a::text FROM unnest(datacl) a "
                "ORDER BY 1) FROM pg_database WHERE datname = %s",
                (database,),
            )
            return cursor.fetchone()
    finally:
        conn.close()


def instance_view(instance: dg.DagsterInstance) -> dict:
    """What the UI shows of the instance: runs, their status, every asset's partitions."""
    runs = {run.run_id: run.status for run in instance.get_runs()}
    keys = sorted(instance.get_asset_keys(), key=lambda key: key.to_string())
    partitions = {key.to_string(): instance.get_materialized_partitions(key) for key in keys}
    materializations = {
        key.to_string(): len(instance.fetch_materializations(key, limit=1000).records)
        for key in keys
    }
    return {"runs": runs, "partitions": partitions, "materializations": materializations}


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    return subprocess.run(
        [sys.executable, "-m", "flower_assets.cli", *args],
        env={**env, "FLOWER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pg_dump_and_pg_restore_as_documented_bring_back_every_row(
    databases, tmp_path, monkeypatch
) -> None:
    dagster_db, flower_db = databases["DAGSTER_DB"], databases["FLOWER_DB"]
    warehouse_url = url_of(flower_db, databases["FLOWER_DB_USER"])
    shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv(
        "DAGSTER_PG_URL", url_of(dagster_db, databases["DAGSTER_DB_USER"], "postgresql+psycopg2")
    )
    with dg.DagsterInstance.get() as instance:
        materialize(DAYS, warehouse_url, instance)
        before_view = instance_view(instance)
    before = {name: pg_contents(name) for name in (dagster_db, flower_db)}
    properties = {name: pg_database_properties(name) for name in (dagster_db, flower_db)}
    assert {"runs", "event_logs", "asset_keys"} <= set(before[dagster_db])
    assert before[dagster_db]["runs"][0] == len(DAYS)
    assert {"bidding_flowers", "api_responses", "alembic_version"} <= set(before[flower_db])
    assert before[flower_db]["bidding_flowers"][0] > 0
    assert len(before_view["runs"]) == len(DAYS) and before_view["partitions"]

    # Back up: the instance first, then the warehouse, with the page's commands.
    dumps = {}
    for name, documented_name in ((dagster_db, "dagster"), (flower_db, "flower")):
        argv = documented(f"pg_dump -U postgres -Fc {documented_name} ")
        assert argv[-2:] == [">", f"{documented_name}.dump"]
        dumps[name] = tmp_path / f"{documented_name}.dump"
        argv = [name if word == documented_name else word for word in argv[:-2]]
        with dumps[name].open("wb") as out:
            subprocess.run(argv, env=pg_env(), stdout=out, check=True)
        assert dumps[name].read_bytes()[:5] == b"PGDMP"  # -Fc: the custom format

    # The loss, then the restore with the page's commands, into databases made anew.
    for name, documented_name in ((dagster_db, "dagster"), (flower_db, "flower")):
        argv = documented(f"dropdb -U postgres --if-exists {documented_name}")
        subprocess.run(
            [name if w == documented_name else w for w in argv], env=pg_env(), check=True
        )
    assert pg_database_properties(dagster_db) is None
    for name, documented_name in ((dagster_db, "dagster"), (flower_db, "flower")):
        argv = documented(
            f"pg_restore -U postgres --create --exit-on-error -d postgres < {documented_name}.dump"
        )
        with dumps[name].open("rb") as dump:
            subprocess.run(argv[:-2], env=pg_env(), stdin=dump, check=True, capture_output=True)

    assert {name: pg_contents(name) for name in (dagster_db, flower_db)} == before
    assert {name: pg_database_properties(name) for name in (dagster_db, flower_db)} == properties

    # Dagster opens the restored instance and shows the same runs and materializations.
    with dg.DagsterInstance.get() as instance:
        assert instance_view(instance) == before_view
    # The restored warehouse is current: db upgrade has nothing to do and changes nothing.
    upgraded = run_cli("db", "upgrade", database_url=warehouse_url)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    current = run_cli("db", "current", database_url=warehouse_url)
    assert current.returncode == 0 and "head" in current.stdout, current.stdout + current.stderr
    assert pg_contents(flower_db) == before[flower_db]


# -- SQLite, embedded mode -------------------------------------------------------------------------


def sqlite_contents(path: Path) -> dict[str, tuple[int, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        contents = {}
        for table in tables:
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            contents[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        return contents
    finally:
        conn.close()


def home_contents(home: Path) -> dict[str, dict[str, tuple[int, str]]]:
    return {name: sqlite_contents(home / name) for name in (*SQLITE_FILES, WAREHOUSE_FILE)}


def page_span(prefix: str) -> str:
    """The page's backticked command that starts with `prefix`."""
    (span,) = re.findall(rf"`({re.escape(prefix)}[^`]*)`", PAGE.read_text(encoding="utf-8"))
    return span


@pytest.mark.parametrize("procedure", ["sqlite3 .backup while running", "copy while stopped"])
def test_the_documented_sqlite_backup_restores_every_row_of_the_embedded_instance(
    procedure, tmp_path, monkeypatch
) -> None:
    home = tmp_path / ".dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    warehouse_url = f"sqlite:///{home / WAREHOUSE_FILE}"
    if procedure == "copy while stopped":
        backup = page_block("cp -a .dagster_home backup")
        restore = page_span("rm -rf .dagster_home && ")
    else:
        backup = page_block("cd .dagster_home && mkdir -p ../backup")
        restore = page_block("for f in history/runs.db")
        assert all(name in backup and name in restore for name in (*SQLITE_FILES, WAREHOUSE_FILE))

    def shell(script: str) -> None:
        subprocess.run(["bash", "-euc", script], cwd=tmp_path, check=True, capture_output=True)

    with dg.DagsterInstance.get() as instance:
        materialize(DAYS, warehouse_url, instance)
        before_view = instance_view(instance)
        if procedure == "sqlite3 .backup while running":
            shell(backup)  # the online backup, while the instance is open, as the page allows
        before = home_contents(home)
    if procedure == "copy while stopped":
        shell(backup)
    assert before["history/runs.db"]["runs"][0] == len(DAYS)
    assert before["event_log.db"]["event_logs"][0] > 0
    assert before[WAREHOUSE_FILE]["bidding_flowers"][0] > 0
    # Later runs change every file after the backup.
    with dg.DagsterInstance.get() as instance:
        materialize([LATER_DAY], warehouse_url, instance)
    assert home_contents(home) != before

    shell(restore)
    assert home_contents(home) == before
    with dg.DagsterInstance.get() as instance:
        assert instance_view(instance) == before_view
    upgraded = run_cli("db", "upgrade", database_url=warehouse_url)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
