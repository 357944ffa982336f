"""UI speed at full history: a reproducible benchmark of the webserver's GraphQL.

    uv run python benchmarks/ui_queries.py                      # load 2018-01-01..2026-11-26, time
    uv run python benchmarks/ui_queries.py --skip-load          # time again, on the loaded home
    uv run python benchmarks/ui_queries.py --skip-load --profile [--profile-query NAME]
    uv run python benchmarks/ui_queries.py --skip-load --prototype cached_check_state
    uv run python benchmarks/ui_queries.py --days 5 --volume 0.05 --home /tmp/ui   # a quick try

What it does:

1. Load (skipped with --skip-load). The range is generated from the synthetic market
   (`flower_assets.sample.market.day_items`, days generated as the client asks for them, a few kept),
   served by `flower_assets.sample.fake_at_server.FakeAtServer` over loopback, and backfilled through Dagster
   exactly as `backfill.py` does it, with its functions: a child process (`backfill_worker.py`)
   whose environment points the platform at the server and at a fresh SQLite warehouse, on a
   fresh instance configured as the repo's dagster.yaml, in ranged runs of the assets' own
   `BackfillPolicy.multi_run(100)`. All of it lives in --home (default
   benchmarks/results/ui_home, git-ignored): `dagster/` ($DAGSTER_HOME), `warehouse.sqlite`,
   `ui_bench.json` (what was loaded, from which commit), `backfill.log`, `webserver.log`.
2. Timing. `dagster-webserver -w workspace.yaml` is started on a free loopback port with the
   platform's environment (that DAGSTER_HOME, the warehouse, a fake server), and once its code
   location is loaded, the queries the UI's catalog, asset, partitions and checks pages issue
   (`ui_graphql.py`: the UI's own documents, read from the installed bundles) are POSTed to
   /graphql one at a time, in page order, --repeat times (default 3): the first pass is cold
   (each query's first time on a fresh server), the others warm. A page's time is the sum of
   its queries' (the UI sends them concurrently, but one webserver process answers them).
3. With --profile, the slowest query (by warm time, or --profile-query) is run again in-process
   under cProfile by `ui_profile.py`, which also times Dagster's check-state computation per
   check directly, piece by piece, with what-ifs.
4. With --prototype NAME, the webserver runs with a what-if event log storage of
   `ui_prototypes.py` on the same loaded files (nothing in the platform changes).

The responses also say what the UI shows: dates per status for the asset (partition health)
and for the opened check (its Partitions tab); dates with no status show as Missing.

A --skip-load rerun times the current code's webserver over the events the load recorded: a
change to what the platform records (e.g. how checks are logged) needs a new load to be seen.

Event counts are read from the instance's SQLite files. Other work on the machine slows every
wall time: the load average is recorded before and after the timing.

The last line printed is one JSON object (see `main`).
"""

from __future__ import annotations

import argparse
import json
import os
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
from dataclasses import replace
from datetime import date, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
from backfill import (
    Market,
    backfill,
    check_byte_identical,
    dagster_home,
    day_range,
    encode_row,
    platform_env,
    raw_row_count,
    warehouses,
)
from ui_graphql import PAGES, UI_QUERIES, Target, ui_document
from ui_prototypes import PROTOTYPES

from flower_assets.defs.assets import flower_auction_assets
from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets.source.categories import Category

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_HOME = HERE / "results" / "ui_home"
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
        "dirty": git("status", "--porcelain", "--", "flower_assets", "dagster.yaml").splitlines(),
    }


def fresh_home(home: Path) -> None:
    """An empty --home; only an empty directory or an earlier one of ours is ever wiped."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise SystemExit(f"{home} is not empty and was not made by ui_queries.py; not wiping")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by benchmarks/ui_queries.py; wiped by its next load\n")


def watch_runs(runs_db: Path, total: int, stop: threading.Event) -> None:
    """Prints the runs finished every minute: a full-history load runs for several minutes."""
    began = time.perf_counter()
    while not stop.wait(60):
        try:
            with sqlite3.connect(f"file:{runs_db}?mode=ro", uri=True, timeout=5) as connection:
                (done,) = connection.execute(
                    "SELECT count(*) FROM runs WHERE status IN ('SUCCESS', 'FAILURE', 'CANCELED')"
                ).fetchone()
        except sqlite3.Error:
            continue
        say(f"  {done}/{total} runs finished after {time.perf_counter() - began:.0f} s")


def load(home: Path, days: list[date], volume: float) -> dict:
    """The range through Dagster into home, as backfill.py does it; returns what was loaded."""
    fresh_home(home)
    # The answers generated lazily must be the very bytes FakeAtServer's own `answer` sends.
    sample = days[:14]
    check_byte_identical(Market(LazyRows(sample, volume)), sample, volume)
    market = Market(LazyRows(days, volume))
    BaseHTTPRequestHandler.disable_nagle_algorithm = True  # as backfill.py, see there
    git = git_state()
    with (
        FakeAtServer(rows_for=partial(day_items, volume=volume), fault=market.reply) as server,
        warehouses("sqlite", home, "", ["warehouse"]) as urls,
    ):
        instance_home = dagster_home(home, "dagster")
        env = platform_env(server.url, urls["warehouse"], days[0], instance_home)
        runs = -(-len(days) // 100)
        say(f"backfilling {days[0]}..{days[-1]} ({len(days)} dates, ~{runs} runs) into {home} …")
        stop = threading.Event()
        watcher = threading.Thread(
            target=watch_runs,
            args=(instance_db(instance_home, "runs.db"), runs, stop),
            daemon=True,
        )
        watcher.start()
        try:
            result = backfill(days, env, home, None, [])
        finally:
            stop.set()
        api_calls = len(server.requests)
    rows = raw_row_count(urls["warehouse"])
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
        "warehouse_url": urls["warehouse"],
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


def instance_counts(instance_home: Path, dates: int) -> dict:
    """Rows of the event log and check-execution tables, read from the SQLite files."""
    event_log = instance_db(instance_home, "event_log.db")
    with sqlite3.connect(f"file:{event_log}?mode=ro", uri=True) as connection:
        by_type = dict(
            connection.execute(
                "SELECT coalesce(dagster_event_type, 'LOG_MESSAGE'), count(*) FROM event_logs"
                " GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        executions, per_date_executions = connection.execute(
            "SELECT count(*), count(partition) FROM asset_check_executions"
        ).fetchone()
        per_check = connection.execute(
            "SELECT asset_key, count(DISTINCT check_name) FROM asset_check_executions GROUP BY 1"
        ).fetchall()
    runs_db = instance_db(instance_home, "runs.db")
    with sqlite3.connect(f"file:{runs_db}?mode=ro", uri=True) as connection:
        (runs,) = connection.execute("SELECT count(*) FROM runs").fetchone()
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


def print_table(queries: dict, pages: dict) -> None:
    say(f"{'query':<34} {'pages':<24} {'cold s':>7} {'warm s':>7}  {'all passes s':<24} {'KB':>6}")
    for name, q in queries.items():
        warm = "" if q["warm_s"] is None else f"{q['warm_s']:.3f}"
        passes = " ".join(f"{t:.3f}" for t in q["times_s"])
        say(
            f"{name:<34} {','.join(q['pages']):<24} {q['cold_s']:>7.3f} {warm:>7}  "
            f"{passes:<24} {q['response_bytes'] / 1024:>6.1f}"
        )
    for page, total in pages.items():
        warm = "" if total["warm_s"] is None else f"{total['warm_s']:.3f}"
        say(f"{'page ' + page:<34} {'(sum)':<24} {total['cold_s']:>7.3f} {warm:>7}")


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
        default=date(2026, 11, 26),
        help="last auction date loaded, inclusive",
    )
    parser.add_argument("--days", type=int, help="load --start and the days after it (not --end)")
    parser.add_argument("--volume", type=float, default=1.0, help="market size multiplier")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="where the load lives")
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
    home = args.home.resolve()

    if args.skip_load:
        record = home / "ui_bench.json"
        if not record.exists():
            raise SystemExit(f"nothing loaded in {home}: run without --skip-load first")
        loaded = json.loads(record.read_text())
        say(f"reusing {home}: {loaded['start']}..{loaded['end']}, commit {loaded['commit']}")
    else:
        end = args.start + timedelta(days=args.days - 1) if args.days else args.end
        loaded = load(home, day_range(args.start, (end - args.start).days + 1), args.volume)

    instance_home = home / "dagster"
    counts = instance_counts(instance_home, loaded["dates"])
    say(
        f"instance: {counts['event_log_rows']} events ({counts['events_per_date']} per date), "
        f"{counts['asset_check_executions']} check executions, {counts['runs']} runs"
    )
    target = Target(
        location=LOCATION,
        asset=args.asset,
        all_assets=tuple(asset.key.to_user_string() for asset in flower_auction_assets),
        partition=args.partition or loaded["end"],
        check=args.check or "",
    )
    git = git_state()
    load_before = os.getloadavg()
    with FakeAtServer(rows_for=partial(day_items, volume=loaded["volume"])) as server:
        env = platform_env(
            server.url, loaded["warehouse_url"], date.fromisoformat(loaded["start"]), instance_home
        )
        if args.prototype:
            env = prototype_env(env, instance_home, args.prototype)
            say(f"prototype {args.prototype}: the webserver's instance is {env['DAGSTER_HOME']}")
        webserver = Webserver(env, home / "webserver.log")
        try:
            ready_s = webserver.wait_ready()
            say(
                f"webserver ready in {ready_s:.1f} s at {webserver.url}; timing {args.repeat} passes"
            )
            queries, target, shown = time_queries(webserver, target, max(1, args.repeat))
        finally:
            webserver.stop()
        load_after = os.getloadavg()
        pages = page_totals(queries)
        print_table(queries, pages)
        say(f"what the UI shows (dates by status): {shown}")
        slowest = max(queries, key=lambda name: queries[name]["warm_s"] or queries[name]["cold_s"])
        report = None
        if args.profile:
            profiled = args.profile_query or slowest
            say(f"profiling {profiled} in-process (ui_profile.py) …")
            report = profile(env, home, profiled, target)

    print(
        json.dumps(
            {
                "home": str(home),
                "start": loaded["start"],
                "end": loaded["end"],
                "dates": loaded["dates"],
                "volume": loaded["volume"],
                "loaded_at_commit": loaded["commit"],
                "loaded_local_changes": loaded["dirty"],
                "load_wall_s": loaded["wall_s"],
                "timed_at_commit": git["commit"],
                "timed_local_changes": git["dirty"],
                "prototype": args.prototype,
                "asset": target.asset,
                "partition": target.partition,
                "check": target.check,
                **counts,
                "webserver_ready_s": round(ready_s, 2),
                "queries": queries,
                "pages": pages,
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
