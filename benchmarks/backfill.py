"""Backfill speed: a reproducible benchmark (issue 5).

    uv run python benchmarks/backfill.py --days 366 --warehouse sqlite|postgres [--volume K]
        [--instance sqlite|postgres]

What it does, in one process run:

1. Generates every answer of the range from the synthetic Yangjae market
   (`flower_assets.sample.market.day_items(day, category, volume)`) and encodes each row to JSON bytes
   once, so the fake server only slices and joins bytes per request and is never the bottleneck.
   The answers are byte-identical to `flower_assets.sample.days.answer` (checked at start).
2. Serves them with `flower_assets.sample.fake_at_server.FakeAtServer` over real HTTP on loopback, which counts
   the calls.
3. Backfills the range through Dagster exactly as a user would, in a child process
   (`backfill_worker.py`) whose environment points the platform at the server
   (FLOWER_API_KEY, FLOWER_API_BASE_URL, FLOWER_DATABASE_URL, FLOWER_START_DATE) and at a fresh
   DagsterInstance configured as the repo's dagster.yaml ($DAGSTER_HOME): the range is cut into
   runs of the assets' own `BackfillPolicy.multi_run(max_partitions_per_run)`, each run a
   ranged job run.
   `wall_s` runs from spawning that process to its last partition materialized (interpreter and
   Dagster start-up included); `peak_rss_mb` is that process's own peak RSS.
4. Measures the ceiling, `limit_rows_per_s`: the same rows decoded from the same JSON bytes and
   loaded into a fresh warehouse of the same kind with the package's own data path and no
   orchestration, no HTTP and no re-reading of raw rows from the warehouse:
   `parse_page` -> `raw_rows` -> `Warehouse.replace_partition(raw)` -> `split_loadable` ->
   `items_seen` / `varieties_seen` -> `upsert_items` / `upsert_varieties` (once per chunk of
   max_partitions_per_run days, on keys made unique over the chunk) -> `auction_records` ->
   `replace_partition(bidding_flowers, rejected_bidding_flowers)`.
5. Times the default one-run-per-partition way on a few sample partitions: one
   `dagster asset materialize --select '*' --partition D` process per partition, with Dagster's
   default executor (a process per step, `default_executor.py`); `per_partition_run_s` is their
   median. The same runs with the platform's own in-process executor (`-m flower_assets`) give
   `per_partition_in_process_run_s`. Each way loads into a fresh warehouse and instance of its own.
6. Checks correctness on those sample partitions: the backfill's tables equal the
   one-partition-at-a-time tables (raw rows without fetched_at; bidding_flowers joined to their
   item and variety names, since ids may differ between two warehouses; quarantined rows), and
   the backfill is complete (every run succeeded, every asset materialized every partition,
   every generated row stored).

The last line printed is one JSON object (see `main`).

`--instance` chooses the Dagster instance of every run (the warehouse is `--warehouse`'s):
`sqlite` (default) is the repo's dagster.yaml, SQLite files in a fresh home; `postgres` is
`deploy/postgres/dagster.yaml`, with DAGSTER_PG_URL naming a throw-away database per instance on
the server of `--postgres-url` (`flower_bench_<hex>_dagster_<home>`), dropped at the end.
Dagster settings of the run processes pass through from this process's environment, e.g.
`DAGSTER_EVENT_BATCH_SIZE=0` to store every event by itself (the code location sets 500 unless
told otherwise, `flower_assets.settings.apply_event_batching`; reported as `event_batch_size`).

Volumes (rows per auction day per category), measured over 2024 at volume 1:
cut flowers (절화) ~2.7k rows (1.8k-3.6k) on Mon/Wed/Fri, foliage (관엽) ~250 on Tue/Thu,
orchids (난) ~153 on Tue/Fri, spring orchids (춘란) ~10 (6-17) on the second Friday of a month;
nothing on Sundays and Korean public holidays; busier in February, quieter in July and August
(the market's seasons, `sample/market.py`). 2024 totals 431,868 raw rows over 366 partitions
(426,410 before varieties persisted across auction days, commit 71f6ee6^; 445,693 before the
seasons, commit ad8f6b2 and earlier). Why: this is a busy Yangjae market as the API documents it
("a busy cut-flower day has a few thousand rows") on its real weekly calendar, so most
partitions are light or empty and the per-partition overhead shows as it would in production.
`--volume K` multiplies the varieties traded (a K-times larger market): at K=50 a cut-flower
day is ~139k rows, which the client fetches in pages of its 5,000-row page size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import polars as pl
import psycopg2
import yaml
from prototypes import PROTOTYPES

from flower_assets import settings
from flower_assets.defs.dated import BACKFILL_POLICY
from flower_assets.defs.resources import AtApiResource
from flower_assets.sample.days import answer
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.sample.market import day_items
from flower_assets.source.categories import Category
from flower_assets.source.envelope import parse_page
from flower_assets.transform.normalize import auction_records, items_seen, varieties_seen
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.raw import raw_rows
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import BIDDING, FLOWER_TYPES, FLOWERS, RAW, REJECTED

HERE = Path(__file__).resolve().parent
FAKE_KEY = "0123456789abcdef0123456789abcdef"
CHUNK_DAYS = BACKFILL_POLICY.max_partitions_per_run
PAGE_SIZE = AtApiResource().page_size


def day_range(start: date, days: int) -> list[date]:
    return [start + timedelta(days=offset) for offset in range(days)]


def encode_row(row: dict[str, str]) -> bytes:
    # The same encoding as sample.envelope, so a joined page is byte-identical to its answer.
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Market:
    """Every (day, category code) answer of the range, as rows pre-encoded to JSON bytes."""

    rows: dict[tuple[date, str], list[bytes]]

    @classmethod
    def generate(cls, days: list[date], volume: float) -> Market:
        return cls(
            {
                (day, category.code): [encode_row(row) for row in day_items(day, category, volume)]
                for day in days
                for category in Category
            }
        )

    def row_count(self, day: date | None = None) -> int:
        return sum(len(rows) for (d, _), rows in self.rows.items() if day is None or d == day)

    def body(self, day: date, code: str, page_size: int | None = None, page: int = 1) -> bytes:
        """The answer for one page, or for the whole day in one page without a page size."""
        rows = self.rows[(day, code)]
        if page_size is not None:
            rows = rows[(page - 1) * page_size : page * page_size]
        return b'{"response":{"resultCd":"0","resultMsg":"OK","numOfRows":"%d","items":[%s]}}' % (
            len(rows),
            b",".join(rows),
        )

    def reply(self, params: dict[str, str], _number: int) -> Reply | None:
        """FakeAtServer hook: the pre-encoded answer to a well-formed request of the range.

        Anything else (a bad parameter, a day outside the range) returns None, so the server
        answers it the normal way through `sample.answer`.
        """
        try:
            day = date.fromisoformat(params["baseDate"])
            page_size, page = int(params["countPerPage"]), int(params["currentPage"])
        except (KeyError, ValueError):
            return None
        well_formed = (
            params.get("kind") == "f001"
            and params.get("serviceKey")
            and params.get("dataType") == "json"
            and page_size >= 1
            and page >= 1
        )
        if not well_formed or (day, params.get("flowerGubn")) not in self.rows:
            return None
        return Reply(body=self.body(day, params["flowerGubn"], page_size, page))

    def expected_api_calls(self) -> int:
        """Calls the client needs: pages of PAGE_SIZE until one comes back short."""
        return sum(len(rows) // PAGE_SIZE + 1 for rows in self.rows.values())


def check_byte_identical(market: Market, days: list[date], volume: float) -> None:
    """The cached bytes must be exactly what FakeAtServer's own `answer` would send."""
    busiest = max(days, key=market.row_count)
    for category in Category:
        params = {
            "kind": "f001",
            "serviceKey": FAKE_KEY,
            "baseDate": busiest.isoformat(),
            "flowerGubn": category.code,
            "dataType": "json",
            "countPerPage": str(PAGE_SIZE),
            "currentPage": "1",
        }
        reply = market.reply(params, 0)
        expected = answer(params, partial(day_items, volume=volume))
        if reply is None or reply.body != expected:
            raise AssertionError(f"cached answer differs from sample.answer for {params}")


# --- warehouses ---------------------------------------------------------------------------


@contextmanager
def warehouses(
    kind: str, workdir: Path, postgres_admin_url: str, names: list[str]
) -> Iterator[dict[str, str]]:
    """One fresh, empty warehouse URL per name: SQLite files, or throw-away PostgreSQL databases."""
    if kind == "sqlite":
        yield {name: f"sqlite:///{workdir / f'{name}.sqlite'}" for name in names}
        return
    admin = psycopg2.connect(postgres_admin_url, connect_timeout=10)
    admin.autocommit = True  # CREATE / DROP DATABASE cannot run inside a transaction
    prefix = f"flower_bench_{uuid.uuid4().hex[:8]}"
    created: list[str] = []
    try:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f"CREATE DATABASE {prefix}_{name}")
                created.append(f"{prefix}_{name}")
        base = postgres_admin_url.rsplit("/", 1)[0]
        yield {name: f"{base}/{prefix}_{name}" for name in names}
    finally:
        with admin.cursor() as cursor:
            for database in created:
                cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


@contextmanager
def instance_databases(
    kind: str, workdir: Path, postgres_admin_url: str, names: list[str]
) -> Iterator[dict[str, dict[str, str]]]:
    """Per instance name, the environment its yaml reads: nothing for SQLite; for PostgreSQL,
    DAGSTER_PG_URL naming a throw-away database of its own (psycopg2, as the yaml requires)."""
    if kind == "sqlite":
        yield {name: {} for name in names}
        return
    with warehouses(kind, workdir, postgres_admin_url, [f"dagster_{n}" for n in names]) as urls:
        psycopg2_urls = {
            name: re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", url)
            for name, url in urls.items()
        }
        yield {name: {"DAGSTER_PG_URL": psycopg2_urls[f"dagster_{name}"]} for name in names}


def raw_row_count(url: str) -> int:
    with Warehouse.open(url) as warehouse:
        return warehouse.row_count(RAW)


# --- the three ways to load ---------------------------------------------------------------


# The event log the instance is given (--event-log): the one dagster.yaml names, today's pooled
# subclass, Dagster's stock consolidated SQLite log, or Dagster's default per-run SQLite log (no
# event_log_storage entry; the alert sensor skips on it, so it is for comparison only).
EVENT_LOGS: dict[str, dict[str, str] | None] = {
    "repo": None,
    "pooled": {"module": "flower_assets.instance_storage", "class": "PooledSqliteEventLogStorage"},
    "consolidated": {
        "module": "dagster._core.storage.event_log",
        "class": "ConsolidatedSqliteEventLogStorage",
    },
    "per_run": None,
}


# The instance config each --instance copies into a fresh home.
INSTANCE_YAMLS = {
    "sqlite": HERE.parent / "dagster.yaml",
    "postgres": HERE.parent / "deploy/postgres/dagster.yaml",
}


def dagster_home(
    workdir: Path, name: str, event_log: str = "repo", instance: str = "sqlite"
) -> Path:
    """A fresh instance configured as the repo's dagster.yaml, the embedded default, or as
    deploy/postgres/dagster.yaml (its database in $DAGSTER_PG_URL, see `instance_databases`)."""
    home = workdir / name
    home.mkdir()
    if instance == "postgres":
        shutil.copy(INSTANCE_YAMLS["postgres"], home / "dagster.yaml")
        return home
    config = (HERE.parent / "dagster.yaml").read_text().replace(".dagster_home", str(home))
    if event_log != "repo":
        settings = yaml.safe_load(config)
        storage = EVENT_LOGS[event_log]
        if storage is None:
            settings.pop("event_log_storage", None)
        else:
            # In the home itself, as dagster.yaml's `{env: DAGSTER_HOME}` puts it.
            settings["event_log_storage"] = {**storage, "config": {"base_dir": str(home)}}
        config = yaml.safe_dump(settings)
    (home / "dagster.yaml").write_text(config)
    return home


def platform_env(server_url: str, warehouse_url: str, start: date, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWER_API_KEY": FAKE_KEY,
        "FLOWER_API_BASE_URL": server_url,
        "FLOWER_DATABASE_URL": warehouse_url,
        "FLOWER_START_DATE": start.isoformat(),
        # The fake server has no quota, and a benchmark must not stop to wait for midnight KST.
        "FLOWER_API_DAILY_QUOTA": "1000000",
        "DAGSTER_HOME": str(home),
    }


@dataclass
class Backfill:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    runs: list[dict]
    materialized: dict[str, list[str]]


def backfill(
    days: list[date],
    env: dict[str, str],
    workdir: Path,
    profile: Path | None,
    prototypes: list[str],
) -> Backfill:
    """The whole range through Dagster in a child process; see backfill_worker.py."""
    log = workdir / "backfill.log"
    profiler = ["-m", "cProfile", "-o", str(profile.resolve())] if profile else []
    began = time.time()
    with log.open("w") as stderr:
        done = subprocess.run(
            [
                sys.executable,
                *profiler,
                str(HERE / "backfill_worker.py"),
                "--start",
                days[0].isoformat(),
                "--end",
                days[-1].isoformat(),
                *(f"--prototype={name}" for name in prototypes),
            ],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines = done.stdout.strip().splitlines()
    if not lines:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"the backfill process exited {done.returncode}:\n{tail}")
    report = json.loads(lines[-1])
    if done.returncode:
        print(log.read_text()[-4000:], file=sys.stderr)
    return Backfill(
        wall_s=report["done_at"] - began,
        peak_rss_mb=report["peak_rss_mb"],
        cpu_s=report["cpu_s"],
        runs=report["runs"],
        materialized=report["materialized"],
    )


def limit_load(market: Market, days: list[date], url: str) -> float:
    """Seconds to load the range with the package's data path and nothing else (docstring, 4)."""
    fetched_at = datetime.now(UTC)
    with Warehouse.open(url) as warehouse:
        began = time.perf_counter()
        for offset in range(0, len(days), CHUNK_DAYS):
            chunk = days[offset : offset + CHUNK_DAYS]
            split: dict[date, tuple[pl.DataFrame, pl.DataFrame]] = {}
            for day in chunk:
                raw = pl.concat(
                    raw_rows(
                        parse_page(market.body(day, category.code)).items,
                        day,
                        category,
                        fetched_at,
                    )
                    for category in Category
                )
                warehouse.replace_partition(day, {RAW: raw})
                split[day] = split_loadable(raw)
            # One upsert per master and chunk, of keys made unique over the whole chunk.
            loadable_rows = pl.concat(loadable for loadable, _ in split.values())
            warehouse.upsert_items(items_seen(loadable_rows))
            items = warehouse.read_table(FLOWER_TYPES)
            warehouse.upsert_varieties(varieties_seen(loadable_rows, items))
            items, varieties = warehouse.read_table(FLOWER_TYPES), warehouse.read_table(FLOWERS)
            for day, (loadable, rejected) in split.items():
                records = auction_records(loadable, items, varieties)
                warehouse.replace_partition(day, {BIDDING: records, REJECTED: rejected})
        return time.perf_counter() - began


# How a one-partition run finds the definitions: the platform's own (in-process executor), or
# the same assets under Dagster's default executor, one process per step (default_executor.py).
EXECUTORS = {
    "default": ["-f", str(HERE / "default_executor.py")],
    "in_process": ["-m", "flower_assets"],
}


def per_partition_runs(
    days: list[date], env: dict[str, str], workdir: Path, executor: str
) -> list[float]:
    """Wall seconds of one `dagster asset materialize` process per partition."""
    dagster = Path(sys.executable).parent / "dagster"
    walls = []
    for day in days:
        command = [str(dagster), "asset", "materialize", *EXECUTORS[executor], "--select", "*"]
        began = time.perf_counter()
        done = subprocess.run(
            [*command, "--partition", day.isoformat()],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        walls.append(time.perf_counter() - began)
        if done.returncode:
            raise RuntimeError(f"per-partition run of {day} failed:\n{done.stderr[-4000:]}")
    return walls


# --- correctness --------------------------------------------------------------------------


def sample_partitions(market: Market, days: list[date], count: int) -> list[date]:
    """Days that together exercise the most: every category that trades, then an empty day.

    Greedy: the day adding the most not-yet-covered categories (ties: the most rows) until all
    are covered; then one day with no auction (the empty-answer path); then the busiest left.
    """
    trading: dict[date, set[str]] = {day: set() for day in days}
    for (day, code), rows in market.rows.items():
        if rows:
            trading[day].add(code)
    chosen: list[date] = []
    covered: set[str] = set()
    while len(chosen) < min(count, len(days)):
        rest = [day for day in days if day not in chosen]
        pick = max(rest, key=lambda day: (len(trading[day] - covered), market.row_count(day)))
        empty = [day for day in rest if not trading[day]]
        if not trading[pick] - covered and empty and all(trading[day] for day in chosen):
            pick = empty[0]
        chosen.append(pick)
        covered |= trading[pick]
    return sorted(chosen)


def partition_view(warehouse: Warehouse, day: date) -> dict[str, pl.DataFrame]:
    """One partition's tables in a form that does not depend on the warehouse's ids."""
    items, varieties = warehouse.read_table(FLOWER_TYPES), warehouse.read_table(FLOWERS)
    raw = warehouse.read_partition(RAW, day).drop("fetched_at")
    bidding = (
        warehouse.read_partition(BIDDING, day)
        .join(
            varieties.select(
                pl.col("id").alias("flower_id"), "flower_type_id", pl.col("name").alias("variety")
            ),
            on="flower_id",
            how="left",
        )
        .join(
            items.select(
                pl.col("id").alias("flower_type_id"), "flower_gubn", pl.col("name").alias("item")
            ),
            on="flower_type_id",
            how="left",
        )
        .drop("flower_id", "flower_type_id")
    )
    rejected = warehouse.read_partition(REJECTED, day)
    frames = {RAW.name: raw, BIDDING.name: bidding, REJECTED.name: rejected}
    return {name: frame.sort(frame.columns) for name, frame in frames.items()}


def compare(backfilled_url: str, reference_url: str, days: list[date]) -> list[str]:
    """Differences between the two warehouses on these partitions; empty when equal."""
    problems = []
    with Warehouse.open(backfilled_url) as ours, Warehouse.open(reference_url) as reference:
        for day in days:
            got, want = partition_view(ours, day), partition_view(reference, day)
            for name, frame in want.items():
                if not got[name].equals(frame):
                    problems.append(
                        f"{day} {name}: backfill {got[name].height} rows, "
                        f"per-partition {frame.height} rows, contents differ"
                    )
                elif name == BIDDING.name and frame["item"].null_count():
                    problems.append(f"{day} {name}: records whose variety is missing")
    return problems


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=366, help="partitions to backfill")
    parser.add_argument("--warehouse", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--volume", type=float, default=1.0, help="market size multiplier")
    parser.add_argument(
        "--start", type=date.fromisoformat, default=date(2024, 1, 1), help="first auction date"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=3,
        help="partitions run one at a time, for per_partition_run_s and the correctness check",
    )
    parser.add_argument(
        "--prototype",
        action="append",
        default=[],
        choices=sorted(PROTOTYPES),
        help="apply this what-if patch to the backfill process (see prototypes.py); repeatable",
    )
    parser.add_argument(
        "--event-log",
        choices=sorted(EVENT_LOGS),
        default="repo",
        help="the instance's event log storage: as dagster.yaml says (repo), today's pooled "
        "subclass, Dagster's stock consolidated SQLite log, or its default per-run SQLite log",
    )
    parser.add_argument(
        "--instance",
        choices=sorted(INSTANCE_YAMLS),
        default="sqlite",
        help="the Dagster instance: the repo's dagster.yaml (SQLite) or "
        "deploy/postgres/dagster.yaml on throw-away databases of --postgres-url",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="write cProfile stats of the backfill process here (slows it; for diagnosis only)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL of the server on which throw-away databases are created and dropped",
    )
    args = parser.parse_args()
    if args.instance == "postgres" and args.event_log != "repo":
        parser.error("--event-log chooses a SQLite event log: not with --instance postgres")
    days = day_range(args.start, args.days)

    def say(message: str) -> None:
        print(message, flush=True)

    began = time.perf_counter()
    market = Market.generate(days, args.volume)
    check_byte_identical(market, days, args.volume)
    expected_rows = market.row_count()
    say(
        f"generated {expected_rows} rows for {len(days)} days in {time.perf_counter() - began:.1f} s"
    )
    sample = sample_partitions(market, days, args.sample)

    # FakeAtServer writes headers and body in two sends; with Nagle's algorithm the body then
    # waits for the client's delayed ACK, ~40 ms per call (measured: 39 ms vs 0.8 ms per call).
    # The real API is no such bottleneck, so neither may the fake be. Only this process serves.
    BaseHTTPRequestHandler.disable_nagle_algorithm = True
    workdir = Path(tempfile.mkdtemp(prefix="flower_bench_"))
    try:
        with (
            FakeAtServer(
                rows_for=partial(day_items, volume=args.volume), fault=market.reply
            ) as server,
            warehouses(
                args.warehouse, workdir, args.postgres_url, ["backfill", "limit", *EXECUTORS]
            ) as urls,
            instance_databases(
                args.instance, workdir, args.postgres_url, ["home", *EXECUTORS]
            ) as instance_env,
        ):
            say(f"backfilling {days[0]}..{days[-1]} into {args.warehouse} through Dagster …")
            home = dagster_home(workdir, "home", args.event_log, args.instance)
            env = {
                **platform_env(server.url, urls["backfill"], days[0], home),
                **instance_env["home"],
            }
            result = backfill(days, env, workdir, args.profile, args.prototype)
            api_calls = len(server.requests)
            # Other work on the machine slows every wall time here; this says how much there was.
            load_1m = os.getloadavg()[0]
            rows = raw_row_count(urls["backfill"])
            say(f"  {rows} rows, {api_calls} calls in {result.wall_s:.1f} s, runs: {result.runs}")

            say("loading the same bytes with no orchestration …")
            limit_s = limit_load(market, days, urls["limit"])
            say(f"  {limit_s:.1f} s")

            # Each executor's runs go into a warehouse and an instance of their own.
            walls: dict[str, list[float]] = {}
            reference_calls: dict[str, int] = {}
            problems: list[str] = []
            for executor in EXECUTORS:
                say(f"one run per partition, {executor} executor, on {[str(d) for d in sample]} …")
                calls_before = len(server.requests)
                reference_env = {
                    **platform_env(
                        server.url,
                        urls[executor],
                        days[0],
                        dagster_home(workdir, f"{executor}_home", args.event_log, args.instance),
                    ),
                    **instance_env[executor],
                }
                walls[executor] = per_partition_runs(sample, reference_env, workdir, executor)
                reference_calls[executor] = len(server.requests) - calls_before
                say(f"  {[round(w, 1) for w in walls[executor]]} s")
                problems += compare(urls["backfill"], urls[executor], sample)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    keys = {day.isoformat() for day in days}
    sample_calls = sum(
        len(market.rows[(d, c.code)]) // PAGE_SIZE + 1 for d in sample for c in Category
    )
    checks = {
        "runs_succeeded": all(run["success"] for run in result.runs),
        "all_partitions_materialized": all(
            set(materialized) == keys for materialized in result.materialized.values()
        ),
        "rows_as_generated": rows == expected_rows,
        "sample_equal_to_per_partition": not problems,
        "per_partition_api_calls_as_expected": all(
            calls == sample_calls for calls in reference_calls.values()
        ),
    }
    correct = all(checks.values())
    for problem in problems:
        say(f"MISMATCH {problem}")
    say(f"correctness: {'OK' if correct else 'FAILED'} {checks}")

    # `--sample 0` times the backfill alone.
    per_partition_run_s = {
        executor: statistics.median(w) if w else 0.0 for executor, w in walls.items()
    }
    limit_rows_per_s = expected_rows / limit_s
    rows_per_s = rows / result.wall_s
    print(
        json.dumps(
            {
                "warehouse": args.warehouse,
                "volume": args.volume,
                "prototypes": args.prototype,
                "event_log": args.event_log,
                "instance": args.instance,
                # As the backfill process applies it when it loads the code location.
                "event_batch_size": settings.event_batch_size(),
                "start": days[0].isoformat(),
                "partitions": len(days),
                "runs": len(result.runs),
                "rows": rows,
                "api_calls": api_calls,
                "api_calls_expected": market.expected_api_calls(),
                "wall_s": round(result.wall_s, 2),
                "rows_per_s": round(rows_per_s),
                "peak_rss_mb": round(result.peak_rss_mb, 1),
                "backfill_cpu_s": round(result.cpu_s, 2),
                "load_1m_after_backfill": round(load_1m, 2),
                "limit_s": round(limit_s, 2),
                "limit_rows_per_s": round(limit_rows_per_s),
                "ratio_to_limit": round(rows_per_s / limit_rows_per_s, 3),
                "sample_partitions": [day.isoformat() for day in sample],
                # The default way: one run per partition, Dagster's default executor.
                "per_partition_walls_s": [round(wall, 2) for wall in walls["default"]],
                "per_partition_run_s": round(per_partition_run_s["default"], 2),
                "speedup_vs_per_partition": round(
                    per_partition_run_s["default"] * len(days) / result.wall_s, 1
                ),
                # One run per partition with the platform's own in-process executor.
                "per_partition_in_process_walls_s": [
                    round(wall, 2) for wall in walls["in_process"]
                ],
                "per_partition_in_process_run_s": round(per_partition_run_s["in_process"], 2),
                "speedup_vs_per_partition_in_process": round(
                    per_partition_run_s["in_process"] * len(days) / result.wall_s, 1
                ),
                "checks": checks,
                "correct": correct,
            },
            ensure_ascii=False,
        )
    )
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
