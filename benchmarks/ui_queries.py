"""UI speed at full history: a reproducible benchmark of the webserver's GraphQL.

    uv run python benchmarks/ui_queries.py                      # load 2018-01-01..yesterday, time
    uv run python benchmarks/ui_queries.py --skip-load          # time again, on the loaded home
    uv run python benchmarks/ui_queries.py --instance postgres  # the same on PostgreSQL (ui_home_pg)
    uv run python benchmarks/ui_queries.py --skip-load --profile [--profile-query NAME]
    uv run python benchmarks/ui_queries.py --skip-load --prototype cached_check_state
    uv run python benchmarks/ui_queries.py --days 5 --volume 0.05 --home /tmp/ui   # a quick try

What it does:

1. Load (skipped with --skip-load). The range is generated from the synthetic market
   (`flower_assets.sample.market.day_items`, days generated as the client asks for them, a few kept),
   served by `flower_assets.sample.fake_at_server.FakeAtServer` over loopback, and backfilled through Dagster
   exactly as `backfill.py` does it, with its functions: a child process (`backfill_worker.py`)
   whose environment points the platform at the server and at a fresh warehouse, on a fresh
   instance, in ranged runs of the assets' own `BackfillPolicy.multi_run(100)`. All of it lives
   in --home (git-ignored): `dagster/` ($DAGSTER_HOME), `ui_bench.json` (what was loaded, from
   which commit, in which databases), `backfill.log`, `webserver.log`.
   --instance sqlite (default home benchmarks/results/ui_home): the instance configured as the
   repo's dagster.yaml, the warehouse `warehouse.sqlite` in the home.
   --instance postgres (default home benchmarks/results/ui_home_pg): the instance configured as
   deploy/postgres/dagster.yaml, $DAGSTER_PG_URL naming a database of its own on the server of
   --postgres-url (default the local one, user postgres), and the warehouse in a second
   database there. Both are named after the home (`flower_ui_<home>_<hash>_dagster|_warehouse`)
   and kept for --skip-load; a new load into the home drops and creates them again,
   --drop-databases drops them after timing. They commit with `synchronous_commit = off` (set
   on them only): the load no longer waits on fsync for every event; reads are unchanged.
   Every run (with or without --skip-load) first copies the repo's yaml into the home's
   `dagster/dagster.yaml` again, so a rerun times the storage classes the yaml names now.
2. Timing. `dagster-webserver -w workspace.yaml` is started on a free loopback port with the
   platform's environment (that DAGSTER_HOME, the warehouse, a fake server), and once its code
   location is loaded, the queries the UI's catalog, asset, partitions and checks pages issue
   (`ui_graphql.py`: the UI's own documents, read from the installed bundles) are POSTed to
   /graphql one at a time, in page order, --repeat times (default 3): the first pass is cold
   (each query's first time on a fresh server), the others warm (their median). A page's time
   is the sum of its queries' (the UI sends them concurrently, but one webserver process
   answers them). Printed per page: each query's cold and warm seconds, then a verdict line,
   whether all of them are under --limit-s (1 s), cold and warm.
3. With --profile, the slowest query (by warm time, or --profile-query) is run again in-process
   under cProfile by `ui_profile.py`, which also times Dagster's check-state computation per
   check directly, piece by piece, with what-ifs.
4. With --prototype NAME, the webserver runs with a what-if event log storage of
   `ui_prototypes.py` on the same loaded files (nothing in the platform changes).

The responses also say what the UI shows: dates per status for the asset (partition health)
and for the opened check (its Partitions tab); dates with no status show as Missing.

A --skip-load rerun times the current code's webserver over the events the load recorded: a
change to what the platform records (e.g. how checks are logged) needs a new load to be seen.

Event counts are read from the instance's storage (its SQLite files or its PostgreSQL
database). Other work on the machine slows every wall time: the load average is recorded before
and after the timing. The storage classes the webserver really used are recorded as Dagster
reports them (`instance { info }`), with the last commits of the files that define them.

The last line printed is one JSON object (see `main`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import date, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import psycopg2
import yaml
from backfill import (
    Market,
    backfill,
    check_byte_identical,
    day_range,
    encode_row,
    platform_env,
    raw_row_count,
)
from ui_graphql import PAGES, UI_QUERIES, Target, ui_document
from ui_prototypes import PROTOTYPES

from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets.source.categories import Category

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_HOMES = {
    "sqlite": HERE / "results" / "ui_home",
    "postgres": HERE / "results" / "ui_home_pg",
}
# The instance config each kind copies into the home, read at every run.
INSTANCE_CONFIGS = {
    "sqlite": REPO / "dagster.yaml",
    "postgres": REPO / "deploy/postgres/dagster.yaml",
}
# The files that define the storages the webserver uses (their last commits are recorded).
STORAGE_FILES = (
    "flower_assets/instance_storage.py",
    "flower_assets/instance_storage_postgres.py",
    "flower_assets/check_state_checkpoint.py",
    "dagster.yaml",
    "deploy/postgres/dagster.yaml",
)
# The server and user of --instance postgres; the database named here is only used to create
# and drop the home's own. psycopg2, as deploy/postgres/dagster.yaml requires.
DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
MARKER = ".ui_queries_home"
LOCATION = "flower_assets"


def say(message: str) -> None:
    print(message, flush=True)


# --- load ---------------------------------------------------------------------------------


class LazyRows(Mapping[tuple[date, str], list[bytes]]):
    """`Market.rows` for a long range, each answer generated when first asked for.

    Nine years generated up front take ~2 minutes and ~1 GB; the client asks for one day at a
    time, so a few days' answers are kept (paged requests of one answer hit the same entry).
    """

    def __init__(self, days: list[date], volume: float, keep: int = 32):
        self.days, self.volume, self.keep = set(days), volume, keep
        self._answers: OrderedDict[tuple[date, str], list[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[date, str]) -> list[bytes]:
        day, code = key
        if day not in self.days or code not in {category.code for category in Category}:
            raise KeyError(key)
        with self._lock:  # FakeAtServer answers on several threads
            rows = self._answers.get(key)
            if rows is None:
                category = Category.from_code(code)
                rows = [encode_row(row) for row in day_items(day, category, self.volume)]
                self._answers[key] = rows
                if len(self._answers) > self.keep:
                    self._answers.popitem(last=False)
            self._answers.move_to_end(key)
            return rows

    def __iter__(self) -> Iterator[tuple[date, str]]:
        return ((day, category.code) for day in sorted(self.days) for category in Category)

    def __len__(self) -> int:
        return len(self.days) * len(Category)


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        # The platform's own files differing from that commit (others may be editing them).
        "dirty": git(
            "status", "--porcelain", "--", "flower_assets", "dagster.yaml", "deploy"
        ).splitlines(),
        # The last commit of each file that defines the instance's storages.
        "storage_commits": {
            path: git("log", "-1", "--format=%h %cI", "--", path) for path in STORAGE_FILES
        },
    }


# --- the instance and its databases -------------------------------------------------------


def write_instance_config(instance_home: Path, kind: str) -> bool:
    """The repo's yaml for `kind` into the home's dagster.yaml; True if that changed it.

    Done at every run, so a --skip-load rerun uses the storage classes the repo's yaml names
    now, not the ones of the load.
    """
    config = INSTANCE_CONFIGS[kind].read_text()
    if kind == "sqlite":
        config = config.replace(".dagster_home", str(instance_home))  # as backfill.dagster_home
    target = instance_home / "dagster.yaml"
    instance_home.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.read_text() == config:
        return False
    target.write_text(config)
    return True


def named_storages(kind: str) -> dict[str, str]:
    """The storages the repo's yaml for `kind` names: module.class, or the `storage` shorthand."""
    settings = yaml.safe_load(INSTANCE_CONFIGS[kind].read_text()) or {}
    named = {}
    for key in ("storage", "run_storage", "event_log_storage", "schedule_storage"):
        value = settings.get(key)
        if isinstance(value, dict) and "class" in value:
            named[key] = f"{value.get('module')}.{value['class']}"
        elif isinstance(value, dict):
            named[key] = ", ".join(sorted(value))
    return named


def postgres_databases(home: Path) -> dict[str, str]:
    """The home's two database names: stable for a home, distinct between homes."""
    slug = re.sub(r"[^a-z0-9]+", "_", home.name.lower()).strip("_")[:24] or "home"
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:6]
    base = f"flower_ui_{slug}_{digest}"
    return {"dagster": f"{base}_dagster", "warehouse": f"{base}_warehouse"}


def database_url(server_url: str, database: str) -> str:
    return f"{server_url.rsplit('/', 1)[0]}/{database}"


def admin_connection(server_url: str):
    # libpq does not know SQLAlchemy's driver suffix.
    libpq = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", server_url)
    connection = psycopg2.connect(libpq, connect_timeout=10)
    connection.autocommit = True  # CREATE / DROP DATABASE cannot run inside a transaction
    return connection


def drop_databases(server_url: str, databases: list[str]) -> None:
    # Not `with connection`: psycopg2 would open a transaction even in autocommit.
    with closing(admin_connection(server_url)) as connection, connection.cursor() as cursor:
        for database in databases:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def create_databases(server_url: str, databases: list[str]) -> None:
    """Fresh, empty databases of these names (any earlier ones of the same names dropped).

    They commit without waiting for the WAL flush (`synchronous_commit = off`, set on these
    databases only): dagster-postgres commits every event on its own, and a full-history load
    waited on fsync (`WALSync`) for much of its time.
    It changes how long writes wait, not what is stored nor how reads run: the UI's timings are
    the same.
    """
    drop_databases(server_url, databases)
    # Not `with connection`: psycopg2 would open a transaction even in autocommit.
    with closing(admin_connection(server_url)) as connection, connection.cursor() as cursor:
        for database in databases:
            cursor.execute(f"CREATE DATABASE {database}")
            cursor.execute(f"ALTER DATABASE {database} SET synchronous_commit = off")


def instance_env(env: dict[str, str], loaded: dict) -> dict[str, str]:
    """The platform's environment plus what the instance's yaml reads ($DAGSTER_PG_URL)."""
    if loaded.get("instance", "sqlite") == "postgres":
        return {**env, "DAGSTER_PG_URL": loaded["dagster_pg_url"]}
    return env


def fresh_home(home: Path) -> None:
    """An empty --home; only an empty directory or an earlier one of ours is ever wiped."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise SystemExit(f"{home} is not empty and was not made by ui_queries.py; not wiping")
        record = home / "ui_bench.json"
        earlier = json.loads(record.read_text()) if record.exists() else {}
        if earlier.get("databases"):  # the earlier load's PostgreSQL databases go with it
            drop_databases(earlier["postgres_server"], list(earlier["databases"].values()))
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by benchmarks/ui_queries.py; wiped by its next load\n")


def watch_runs(loaded: dict, instance_home: Path, total: int, stop: threading.Event) -> None:
    """Prints the runs finished every minute: a full-history load runs for several minutes."""
    began = time.perf_counter()
    sql = "SELECT count(*) FROM runs WHERE status IN ('SUCCESS', 'FAILURE', 'CANCELED')"
    while not stop.wait(60):
        try:
            with instance_sql(loaded, instance_home, "runs") as execute:
                ((done,),) = execute(sql)
        except (sqlite3.Error, psycopg2.Error):
            continue
        say(f"  {done}/{total} runs finished after {time.perf_counter() - began:.0f} s")


def load(home: Path, days: list[date], volume: float, kind: str, postgres_url: str) -> dict:
    """The range through Dagster into home, as backfill.py does it; returns what was loaded."""
    fresh_home(home)
    # The answers generated lazily must be the very bytes FakeAtServer's own `answer` sends.
    sample = days[:14]
    check_byte_identical(Market(LazyRows(sample, volume)), sample, volume)
    market = Market(LazyRows(days, volume))
    BaseHTTPRequestHandler.disable_nagle_algorithm = True  # as backfill.py, see there
    git = git_state()
    where: dict = {"instance": kind}
    if kind == "postgres":
        databases = postgres_databases(home)
        create_databases(postgres_url, list(databases.values()))
        where |= {
            "postgres_server": postgres_url,
            "databases": databases,
            "synchronous_commit": "off",  # see create_databases
            "dagster_pg_url": database_url(postgres_url, databases["dagster"]),
            "warehouse_url": database_url(postgres_url, databases["warehouse"]),
        }
    else:
        where["warehouse_url"] = f"sqlite:///{home / 'warehouse.sqlite'}"
    instance_home = home / "dagster"
    write_instance_config(instance_home, kind)
    with FakeAtServer(rows_for=partial(day_items, volume=volume), fault=market.reply) as server:
        env = platform_env(server.url, where["warehouse_url"], days[0], instance_home)
        env = instance_env(env, where)
        runs = -(-len(days) // 100)
        say(
            f"backfilling {days[0]}..{days[-1]} ({len(days)} dates, ~{runs} runs) into {home} "
            f"({kind}) …"
        )
        stop = threading.Event()
        watcher = threading.Thread(
            target=watch_runs, args=(where, instance_home, runs, stop), daemon=True
        )
        watcher.start()
        try:
            result = backfill(days, env, home, None, [])
        finally:
            stop.set()
        api_calls = len(server.requests)
    rows = raw_row_count(where["warehouse_url"])
    keys = {day.isoformat() for day in days}
    loaded = {
        "start": days[0].isoformat(),
        "end": days[-1].isoformat(),
        "dates": len(days),
        "volume": volume,
        "rows": rows,
        "api_calls": api_calls,
        "runs": len(result.runs),
        "runs_succeeded": all(run["success"] for run in result.runs),
        "all_partitions_materialized": all(
            set(materialized) == keys for materialized in result.materialized.values()
        ),
        "wall_s": round(result.wall_s, 1),
        "cpu_s": round(result.cpu_s, 1),
        "peak_rss_mb": round(result.peak_rss_mb),
        "load_1m_after": round(os.getloadavg()[0], 2),
        "commit": git["commit"],
        "dirty": git["dirty"],
        "storage_commits": git["storage_commits"],
        "storages_named": named_storages(kind),
        **where,
    }
    (home / "ui_bench.json").write_text(json.dumps(loaded, indent=1) + "\n")
    say(
        f"  {rows} rows, {api_calls} calls, {len(result.runs)} runs in {result.wall_s:.0f} s "
        f"(commit {git['commit']}{' + local changes' if git['dirty'] else ''})"
    )
    if not (loaded["runs_succeeded"] and loaded["all_partitions_materialized"]):
        raise SystemExit(f"the load is incomplete, see {home / 'backfill.log'}: {loaded}")
    return loaded


# --- what the instance holds --------------------------------------------------------------


def instance_db(instance_home: Path, name: str) -> Path:
    """One of the instance's SQLite files, `runs.db` or `event_log.db`.

    Where dagster.yaml keeps it (runs in Dagster's default history/, the event log in the home
    itself), or in storage/history/, where homes loaded before it followed $DAGSTER_HOME did.
    """
    current = instance_home / ("history" if name == "runs.db" else "") / name
    earlier = instance_home / "storage" / "history" / name
    return earlier if earlier.exists() and not current.exists() else current


@contextmanager
def instance_sql(loaded: dict, instance_home: Path, storage: str) -> Iterator:
    """A function running one read-only query on the instance's `runs` or `event_log` storage.

    SQLite: that storage's file, read-only. PostgreSQL: the instance's database (one for all).
    """
    if loaded.get("instance", "sqlite") == "postgres":
        libpq = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", loaded["dagster_pg_url"])
        connection = psycopg2.connect(libpq, connect_timeout=10)
        try:
            with connection.cursor() as cursor:

                def execute(sql: str) -> list[tuple]:
                    cursor.execute(sql)
                    return cursor.fetchall()

                yield execute
        finally:
            connection.close()
        return
    path = instance_db(instance_home, "runs.db" if storage == "runs" else "event_log.db")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        yield lambda sql: connection.execute(sql).fetchall()
    finally:
        connection.close()


def instance_counts(loaded: dict, instance_home: Path, dates: int) -> dict:
    """Rows of the event log and check-execution tables, read from the instance's storage."""
    with instance_sql(loaded, instance_home, "event_log") as execute:
        by_type = dict(
            execute(
                "SELECT coalesce(dagster_event_type, 'LOG_MESSAGE'), count(*) FROM event_logs"
                " GROUP BY 1 ORDER BY 2 DESC"
            )
        )
        ((executions, per_date_executions),) = execute(
            "SELECT count(*), count(partition) FROM asset_check_executions"
        )
        per_check = execute(
            "SELECT asset_key, count(DISTINCT check_name) FROM asset_check_executions GROUP BY 1"
        )
    with instance_sql(loaded, instance_home, "runs") as execute:
        ((runs,),) = execute("SELECT count(*) FROM runs")
    events = sum(by_type.values())
    return {
        "event_log_rows": events,
        "event_log_rows_by_type": by_type,
        "asset_check_executions": executions,
        # Executions with a partition are the per-date evaluations; the others are the one
        # aggregate result per check and run.
        "asset_check_executions_per_date": per_date_executions,
        "checks_per_asset": {json.loads(key)[0]: count for key, count in per_check},
        "runs": runs,
        "events_per_date": round(events / dates, 2),
        "events_per_date_by_type": {name: round(n / dates, 2) for name, n in by_type.items()},
        "check_executions_per_date": round(executions / dates, 2),
    }


# --- timing -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Webserver:
    """`dagster-webserver -w workspace.yaml` on loopback, in a process group of its own."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        webserver = Path(sys.executable).parent / "dagster-webserver"
        command = [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]
        with log.open("w") as output:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its code server goes in the same group, stopped with it
            )
        self.client = httpx.Client(base_url=self.url, timeout=600)

    def wait_ready(self, timeout_s: float = 180) -> float:
        """Seconds until /server_info answers and the code location is loaded."""
        began = time.perf_counter()
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus"
            " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        while time.perf_counter() - began < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"the webserver exited:\n{self.log.read_text()[-4000:]}")
            try:
                if self.client.get("/server_info").status_code == 200:
                    entries = self.client.post("/graphql", json={"query": query}).json()
                    entries = entries["data"]["workspaceOrError"]["locationEntries"]
                    if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                        errors = [
                            entry["locationOrLoadError"]
                            for entry in entries
                            if entry["locationOrLoadError"]["__typename"] == "PythonError"
                        ]
                        if errors:
                            raise RuntimeError(f"the code location did not load: {errors}")
                        return time.perf_counter() - began
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the webserver was not ready in {timeout_s} s, see {self.log}")

    def query(self, name: str, document: str, variables: dict) -> tuple[float, dict, int]:
        """(seconds, data, response bytes) of one POST /graphql, as the UI sends it."""
        began = time.perf_counter()
        response = self.client.post(
            "/graphql",
            json={"operationName": name, "query": document, "variables": variables},
        )
        seconds = time.perf_counter() - began
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"{name} {variables}: {body['errors'][:3]}")
        return seconds, body["data"], len(response.content)

    def storages(self) -> dict[str, str]:
        """The storage classes of the webserver's instance, as Dagster reports them."""
        body = self.client.post("/graphql", json={"query": "{ instance { info } }"}).json()
        info = yaml.safe_load(((body.get("data") or {}).get("instance") or {}).get("info") or "")
        found = {}
        for key in ("run_storage", "event_log_storage", "schedule_storage"):
            value = (info or {}).get(key)
            # A class built from the yaml: its module and class; one built by another (the
            # `storage:` shorthand's parts): its class name only.
            if isinstance(value, dict):
                found[key] = f"{value.get('module')}.{value.get('class')}"
            elif value:
                found[key] = str(value)
        return found

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def first_check(data: dict) -> str:
    checks = data["assetNodeOrError"]["assetChecksOrError"].get("checks") or []
    if not checks:
        raise RuntimeError("the asset has no checks to open")
    return checks[0]["name"]


def dates_by_status(ranges: list[dict]) -> dict[str, int]:
    """Daily partitions per status, from the ranges a partition-status query returns."""
    counts: dict[str, int] = {}
    for each in ranges:
        days = (date.fromisoformat(each["endKey"]) - date.fromisoformat(each["startKey"])).days
        counts[each["status"]] = counts.get(each["status"], 0) + days + 1
    return counts


def shown_statuses(responses: dict[str, dict]) -> dict:
    """What the UI would show: dates per status for the asset, and for the opened check.

    Dates with no status are shown as Missing by the UI (it computes them as the rest).
    """
    asset = responses["PartitionHealthQuery"]["assetNodeOrError"]["assetPartitionStatuses"]
    check = responses["AssetCheckPartitionHealthQuery"]["assetNodeOrError"]["assetCheckOrError"]
    return {
        "asset_dates_by_status": dates_by_status(asset.get("ranges") or []),
        "check_dates_by_status": dates_by_status(
            (check.get("partitionStatuses") or {}).get("ranges") or []
        ),
    }


def time_queries(server: Webserver, target: Target, repeat: int) -> tuple[dict, Target, dict]:
    """Every UI query `repeat` times, a pass over all of them at a time; the first is cold."""
    times: dict[str, list[float]] = {query.name: [] for query in UI_QUERIES}
    sizes: dict[str, int] = {}
    responses: dict[str, dict] = {}
    for number in range(repeat):
        for query in UI_QUERIES:
            seconds, data, size = server.query(
                query.name, ui_document(query.name), query.variables(target)
            )
            times[query.name].append(seconds)
            sizes[query.name], responses[query.name] = size, data
            if query.name == "AssetChecksQuery" and not target.check:
                target = replace(target, check=first_check(data))
        say(f"  pass {number + 1}/{repeat}: {sum(t[-1] for t in times.values()):.2f} s")
    queries = {}
    for query in UI_QUERIES:
        walls = times[query.name]
        queries[query.name] = {
            "pages": list(query.pages),
            "times_s": [round(wall, 3) for wall in walls],
            "cold_s": round(walls[0], 3),
            "warm_s": round(statistics.median(walls[1:]), 3) if len(walls) > 1 else None,
            "response_bytes": sizes[query.name],
        }
    return queries, target, shown_statuses(responses)


def page_totals(queries: dict) -> dict:
    totals = {}
    for page in PAGES:
        members = [q for q in queries.values() if page in q["pages"]]
        warm = [q["warm_s"] for q in members]
        totals[page] = {
            "cold_s": round(sum(q["cold_s"] for q in members), 3),
            "warm_s": round(sum(warm), 3) if None not in warm else None,
        }
    return totals


def verdicts(queries: dict, limit_s: float) -> dict:
    """Per page: are all its queries under the limit, cold and warm; which are not."""
    result = {}
    for page in PAGES:
        over = [
            name
            for name, q in queries.items()
            if page in q["pages"]
            and (q["cold_s"] >= limit_s or (q["warm_s"] is not None and q["warm_s"] >= limit_s))
        ]
        result[page] = {"all_under_limit": not over, "over_limit": over}
    return result


def print_pages(queries: dict, pages: dict, judged: dict, limit_s: float) -> None:
    """Every page: each of its queries cold and warm, the sums, and a verdict line."""
    for page in PAGES:
        members = [name for name, q in queries.items() if page in q["pages"]]
        say(f"page {page} ({len(members)} queries)")
        say(f"  {'query':<34} {'cold s':>7} {'warm s':>7}  {'all passes s':<24} {'KB':>6}")
        for name in members:
            q = queries[name]
            warm = "" if q["warm_s"] is None else f"{q['warm_s']:.3f}"
            passes = " ".join(f"{t:.3f}" for t in q["times_s"])
            mark = " *" if name in judged[page]["over_limit"] else ""
            say(
                f"  {name:<34} {q['cold_s']:>7.3f} {warm:>7}  {passes:<24} "
                f"{q['response_bytes'] / 1024:>6.1f}{mark}"
            )
        total = pages[page]
        warm = "" if total["warm_s"] is None else f"{total['warm_s']:.3f}"
        say(f"  {'(sum)':<34} {total['cold_s']:>7.3f} {warm:>7}")
        over = judged[page]["over_limit"]
        if not over:
            say(
                f"  VERDICT {page}: OK, all {len(members)} queries under {limit_s:g} s cold and warm"
            )
        else:
            slow = ", ".join(
                f"{name} {queries[name]['cold_s']:.3f}/{queries[name]['warm_s'] or 0:.3f}"
                for name in over
            )
            say(
                f"  VERDICT {page}: SLOW, {len(over)} of {len(members)} queries at or over "
                f"{limit_s:g} s (cold/warm s): {slow}"
            )
    ok = all(verdict["all_under_limit"] for verdict in judged.values())
    say(f"VERDICT all pages: {'OK' if ok else 'SLOW'} (every query under {limit_s:g} s: {ok})")


def profile(env: dict[str, str], home: Path, query: str, target: Target) -> dict:
    """ui_profile.py in a child process with the platform's environment; its JSON report."""
    stats = home / "profile.pstats"
    spec = next(q for q in UI_QUERIES if q.name == query)
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "ui_profile.py"),
            "--query",
            query,
            "--variables",
            json.dumps(spec.variables(target)),
            "--asset",
            target.asset,
            "--stats",
            str(stats),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    # The code server it starts logs its start and stop on the same stdout.
    lines = [line for line in done.stdout.splitlines() if "dagster.code_server" not in line]
    reports = [line for line in lines if line.startswith("{")]
    if done.returncode or not reports:
        raise RuntimeError(f"ui_profile.py failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    for line in lines:
        if line is not reports[-1]:
            say(line)
    return json.loads(reports[-1])


def prototype_env(env: dict[str, str], instance_home: Path, name: str) -> dict[str, str]:
    """The same instance and storage files, with the prototype's event log storage class."""
    module, cls = PROTOTYPES[name]
    home = instance_home.parent / f"dagster_{name}"
    home.mkdir(exist_ok=True)
    config = (instance_home / "dagster.yaml").read_text()
    ours = "module: flower_assets.instance_storage\n  class: PooledSqliteEventLogStorage"
    if ours not in config:
        raise RuntimeError(f"{instance_home / 'dagster.yaml'} has no {ours!r} to replace")
    (home / "dagster.yaml").write_text(config.replace(ours, f"module: {module}\n  class: {cls}"))
    path = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return {**env, "DAGSTER_HOME": str(home), "PYTHONPATH": path}


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start", type=date.fromisoformat, default=date(2018, 1, 1))
    parser.add_argument(
        "--end",
        type=date.fromisoformat,
        default=date.today() - timedelta(days=1),
        help="last auction date loaded, inclusive (default: yesterday)",
    )
    parser.add_argument(
        "--instance",
        choices=sorted(INSTANCE_CONFIGS),
        help="the instance loaded: sqlite (dagster.yaml, the default) or postgres "
        "(deploy/postgres/dagster.yaml, warehouse on PostgreSQL too); --skip-load reads it "
        "from the home",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="--instance postgres: the server and user the home's databases are created on",
    )
    parser.add_argument(
        "--drop-databases",
        action="store_true",
        help="--instance postgres: drop the home's databases after timing (no --skip-load after)",
    )
    parser.add_argument(
        "--limit-s", type=float, default=1.0, help="a page is OK when all its queries are under"
    )
    parser.add_argument("--days", type=int, help="load --start and the days after it (not --end)")
    parser.add_argument("--volume", type=float, default=1.0, help="market size multiplier")
    parser.add_argument(
        "--home",
        type=Path,
        help="where the load lives (default results/ui_home, results/ui_home_pg for postgres)",
    )
    parser.add_argument(
        "--skip-load", action="store_true", help="time the queries on the home loaded before"
    )
    parser.add_argument("--asset", default="public_bidding_flowers", help="the asset opened")
    parser.add_argument("--partition", help="the date opened (default: the last one loaded)")
    parser.add_argument("--check", help="the check opened (default: the first the UI lists)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the queries (>= 1)")
    parser.add_argument(
        "--profile", action="store_true", help="profile the slowest query (ui_profile.py)"
    )
    parser.add_argument("--profile-query", help="profile this query instead of the slowest")
    parser.add_argument(
        "--prototype",
        choices=sorted(PROTOTYPES),
        help="time a what-if of ui_prototypes.py: the webserver's event log storage replaced",
    )
    args = parser.parse_args()
    home = (args.home or DEFAULT_HOMES[args.instance or "sqlite"]).resolve()

    if args.skip_load:
        record = home / "ui_bench.json"
        if not record.exists():
            raise SystemExit(f"nothing loaded in {home}: run without --skip-load first")
        loaded = json.loads(record.read_text())
        kind = loaded.get("instance", "sqlite")  # homes loaded before --instance: SQLite
        if args.instance and args.instance != kind:
            raise SystemExit(f"{home} holds a {kind} instance, not {args.instance}")
        say(
            f"reusing {home} ({kind}): {loaded['start']}..{loaded['end']}, "
            f"loaded at commit {loaded['commit']}"
        )
    else:
        kind = args.instance or "sqlite"
        end = args.start + timedelta(days=args.days - 1) if args.days else args.end
        days = day_range(args.start, (end - args.start).days + 1)
        loaded = load(home, days, args.volume, kind, args.postgres_url)
    if args.prototype and kind != "sqlite":
        raise SystemExit("--prototype replaces the SQLite event log: an --instance sqlite home")

    instance_home = home / "dagster"
    if write_instance_config(instance_home, kind):
        say(f"instance config refreshed from {INSTANCE_CONFIGS[kind].relative_to(REPO)}")
    counts = instance_counts(loaded, instance_home, loaded["dates"])
    say(
        f"instance: {counts['event_log_rows']} events ({counts['events_per_date']} per date), "
        f"{counts['asset_check_executions']} check executions, {counts['runs']} runs"
    )
    target = Target(
        location=LOCATION,
        asset=args.asset,
        # Every asset key of the definitions (one asset, or a multi-asset's several).
        all_assets=tuple(
            dict.fromkeys(
                key.to_user_string()
                for asset in flower_auction_assets
                for key in sorted(asset.keys, key=lambda key: key.to_user_string())
            )
        ),
        partition=args.partition or loaded["end"],
        check=args.check or "",
    )
    git = git_state()
    load_before = os.getloadavg()
    with FakeAtServer(rows_for=partial(day_items, volume=loaded["volume"])) as server:
        env = platform_env(
            server.url, loaded["warehouse_url"], date.fromisoformat(loaded["start"]), instance_home
        )
        env = instance_env(env, loaded)
        if args.prototype:
            env = prototype_env(env, instance_home, args.prototype)
            say(f"prototype {args.prototype}: the webserver's instance is {env['DAGSTER_HOME']}")
        webserver = Webserver(env, home / "webserver.log")
        try:
            ready_s = webserver.wait_ready()
            say(
                f"webserver ready in {ready_s:.1f} s at {webserver.url}; timing {args.repeat} passes"
            )
            storages = webserver.storages()
            say(f"storages: {storages}")
            queries, target, shown = time_queries(webserver, target, max(1, args.repeat))
        finally:
            webserver.stop()
        load_after = os.getloadavg()
        pages = page_totals(queries)
        judged = verdicts(queries, args.limit_s)
        say(
            f"{kind}, {loaded['start']}..{loaded['end']}, load average "
            f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
        )
        print_pages(queries, pages, judged, args.limit_s)
        say(f"what the UI shows (dates by status): {shown}")
        slowest = max(queries, key=lambda name: queries[name]["warm_s"] or queries[name]["cold_s"])
        report = None
        if args.profile:
            profiled = args.profile_query or slowest
            say(f"profiling {profiled} in-process (ui_profile.py) …")
            report = profile(env, home, profiled, target)

    if args.drop_databases and loaded.get("databases"):
        drop_databases(loaded["postgres_server"], list(loaded["databases"].values()))
        (home / "ui_bench.json").unlink()  # nothing left to re-time
        say(f"dropped {', '.join(loaded['databases'].values())}")
    print(
        json.dumps(
            {
                "home": str(home),
                "instance": kind,
                "databases": loaded.get("databases"),
                "start": loaded["start"],
                "end": loaded["end"],
                "dates": loaded["dates"],
                "volume": loaded["volume"],
                "loaded_at_commit": loaded["commit"],
                "loaded_local_changes": loaded["dirty"],
                "load_wall_s": loaded["wall_s"],
                "timed_at_commit": git["commit"],
                "timed_local_changes": git["dirty"],
                "storage_commits": git["storage_commits"],
                "storages_named": named_storages(kind),
                "storages": storages,
                "prototype": args.prototype,
                "asset": target.asset,
                "partition": target.partition,
                "check": target.check,
                **counts,
                "webserver_ready_s": round(ready_s, 2),
                "queries": queries,
                "pages": pages,
                "limit_s": args.limit_s,
                "verdicts": judged,
                "all_under_limit": all(v["all_under_limit"] for v in judged.values()),
                "slowest_query": slowest,
                **shown,
                "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in load_after],
                "profile": report,
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
