"""Time asset check states at full history: Dagster's computation against the checkpoint.

    uv run python benchmarks/check_state.py                      # synthetic, SQLite (~3 min)
    uv run python benchmarks/check_state.py --pg-url postgresql://postgres@127.0.0.1:5432/postgres
    uv run python benchmarks/check_state.py --home benchmarks/results/ui_home/dagster --copy

What a check's `partitionStatuses` costs in the UI is `event_log_storage.get_asset_check_state`
for that check. This times it, per check and for all checks of the asset at once (what one
AssetChecksQuery asks), inside a fixed `partition_loading_context` as the webserver's request
context does, for:

- `dagster`: Dagster's own computation (`bulk_update_asset_check_state` from an empty state,
  what every open-source storage does on every request);
- `first_build`: the checkpoint built from nothing (the first request ever);
- `warm`: the next request, nothing changed;
- `new_process`: a new instance object on the same storage, the in-process caches empty (the
  first request after a webserver starts);
- `one_more_date` / `a_range_of_100`: after a run for one date / for 100 dates (re-run);

and checks that every answer equals Dagster's.

The history (`--days`, default 3,250, from 2018-01-01, one asset with `--checks` partitioned
checks) is written through the instance as the platform's ranged runs write it (100 dates a run:
planned checks, per date a materialization and its evaluations; one date in 17 fails a check),
into a fresh SQLite instance or a fresh PostgreSQL database (dropped at the end). `--home` times
an existing instance instead (all its partitioned checks, partitions as the platform's); with
`--copy` its event log and runs are copied first (SQLite's backup API), so that a loaded
benchmark home is never written to.

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flower_assets import check_state_checkpoint  # noqa: E402
from flower_assets_tests.check_state_history import HistoryWriter, postgres_overrides  # noqa: E402

START = "2018-01-01"
TIMEZONE = "Asia/Seoul"  # as flower_assets/defs/partitions.py


def sqlite_overrides(home: Path) -> dict:
    return {
        "telemetry": {"enabled": False},
        "event_log_storage": {
            "module": "flower_assets.instance_storage",
            "class": "PooledSqliteEventLogStorage",
            "config": {"base_dir": str(home)},
        },
    }


def open_instance(home: Path, overrides: dict) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.local_temp(str(home), overrides=overrides)
    # As dagster-webserver does (pooled PostgreSQL connections).
    instance.optimize_for_webserver(statement_timeout=15_000, pool_recycle=3_600, max_overflow=20)
    return instance


def write_history(
    instance: dg.DagsterInstance, definition, asset: dg.AssetKey, checks, days: int
) -> float:
    writer = HistoryWriter(instance)
    dates = definition.get_partition_keys()[:days]
    began = time.perf_counter()
    for first in range(0, len(dates), 100):
        chunk = dates[first : first + 100]
        failed = {(checks[i % len(checks)].name, d) for i, d in enumerate(chunk) if i % 17 == 3}
        writer.ranged_run(asset, checks, definition, chunk, failed)
        print(f"  wrote {first + len(chunk)} / {len(dates)} dates", file=sys.stderr, flush=True)
    return time.perf_counter() - began


def copy_home(source: Path, target: Path) -> None:
    """The event log and runs of a SQLite home, copied consistently (it may be in use)."""
    for relative in ("event_log.db", "history/runs.db"):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        with (
            sqlite3.connect(f"file:{source / relative}?mode=ro", uri=True) as src,
            sqlite3.connect(target / relative) as dst,
        ):
            src.backup(dst)
    (target / "schedules").mkdir(exist_ok=True)


def home_checks(instance: dg.DagsterInstance) -> list[dg.AssetCheckKey]:
    import sqlalchemy as sa
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable as T

    with instance.event_log_storage.index_connection() as conn:
        rows = conn.execute(
            sa.select(T.c.asset_key, T.c.check_name).distinct().where(T.c.partition.isnot(None))
        ).all()
    return sorted(
        (dg.AssetCheckKey(dg.AssetKey.from_db_string(a), n) for a, n in rows),
        key=lambda k: k.to_user_string(),
    )


def dagsters_state(instance, keys):
    from dagster._core.storage.asset_check_state import (
        AssetCheckState,
        bulk_update_asset_check_state,
    )

    empty = {key: AssetCheckState.empty() for key, _ in keys}
    return dict(bulk_update_asset_check_state(instance, keys, initial_states=empty))


def timed(fn: Callable[[], dict], repeat: int = 1) -> tuple[float, dict]:
    times, result = [], {}
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def measure(home: Path, overrides: dict, keys, now: datetime, writer_of_more) -> dict:
    """Every timing, on instances opened on the storage at `home`."""
    rows: dict[str, dict] = {}
    equal: dict[str, bool] = {}

    def record(name: str, instance, per_check: bool, repeat: int = 1) -> None:
        storage = instance.event_log_storage
        with dg.partition_loading_context(effective_dt=now):
            all_s, ours = timed(lambda: dict(storage.get_asset_check_state(keys)), repeat)
            reference = dagsters_state(instance, keys)
            equal[name] = all(ours[k] == reference[k] for k, _ in keys)
            per = []
            if per_check:
                for key_and_def in keys:
                    one = [key_and_def]
                    per.append(timed(lambda one=one: storage.get_asset_check_state(one))[0])
        rows[name] = {"all_checks_s": round(all_s, 4)}
        if per:
            rows[name]["per_check_s"] = round(statistics.median(per), 4)

    instance = open_instance(home, overrides)
    storage = instance.event_log_storage
    with dg.partition_loading_context(effective_dt=now):
        all_s, _ = timed(lambda: dagsters_state(instance, keys), 2)
        per = [timed(lambda kd=kd: dagsters_state(instance, [kd]))[0] for kd in keys]
    rows["dagster"] = {
        "all_checks_s": round(all_s, 4),
        "per_check_s": round(statistics.median(per), 4),
    }
    equal["dagster"] = True
    # Nothing stored yet: the first request ever builds every checkpoint.
    if storage._checkpoint_table_ready():
        with storage.index_connection() as conn:
            conn.execute(check_state_checkpoint.CHECKPOINTS.delete())
    record("first_build", instance, per_check=False)
    record("warm", instance, per_check=True, repeat=3)
    instance.dispose()

    check_state_checkpoint._CANONICAL.clear()  # a new process: nothing cached in memory
    instance = open_instance(home, overrides)
    record("new_process", instance, per_check=False)
    record("new_process_warm", instance, per_check=True, repeat=3)

    writer_of_more(instance, 1)
    record("one_more_date", instance, per_check=False)
    writer_of_more(instance, 100)
    record("a_range_of_100", instance, per_check=False)
    rows["stats"] = dict(instance.event_log_storage.checkpoint_stats)
    instance.dispose()
    return {"timings": rows, "equal_to_dagster": equal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=3250)
    parser.add_argument("--checks", type=int, default=6)
    parser.add_argument("--pg-url", help="a PostgreSQL server: a database is created and dropped")
    parser.add_argument(
        "--pg-database",
        help="with --pg-url: use (and keep) this database; the history is written if it is new",
    )
    parser.add_argument("--home", type=Path, help="time an existing SQLite instance home")
    parser.add_argument("--copy", action="store_true", help="with --home: time a copy of it")
    args = parser.parse_args()

    definition = dg.DailyPartitionsDefinition(start_date=START, timezone=TIMEZONE, fmt="%Y-%m-%d")
    work = Path(tempfile.mkdtemp(prefix="check_state_"))
    database = None
    result: dict = {"days": args.days, "checks": args.checks}
    try:
        if args.home:
            home = args.home
            if args.copy:
                copy_home(args.home, work)
                home = work
            overrides = sqlite_overrides(home)
            instance = open_instance(home, overrides)
            checks = home_checks(instance)
            asset = checks[0].asset_key
            instance.dispose()
            now = datetime.now()
            result.update(backend="sqlite", source=str(args.home), checks=len(checks), days=None)
        else:
            fresh = True
            if args.pg_url:
                import psycopg2

                admin = psycopg2.connect(args.pg_url)
                admin.autocommit = True
                name = args.pg_database or f"check_state_{uuid.uuid4().hex[:8]}"
                cursor = admin.cursor()
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                fresh = cursor.fetchone() is None
                if fresh:
                    cursor.execute(f"CREATE DATABASE {name}")
                database = None if args.pg_database else name  # dropped at the end
                overrides = postgres_overrides(args.pg_url.rsplit("/", 1)[0] + "/" + name)
                result["backend"] = "postgresql"
            else:
                overrides = sqlite_overrides(work)
                result["backend"] = "sqlite"
            home = work
            asset = dg.AssetKey("public_bidding_flowers")
            checks = [dg.AssetCheckKey(asset, f"check_{i}") for i in range(args.checks)]
            dates = definition.get_partition_keys()[: args.days]
            now = datetime.fromisoformat(dates[-1]) + timedelta(days=1, hours=12)
            if fresh:
                instance = open_instance(home, overrides)
                with dg.partition_loading_context(effective_dt=now):
                    written = write_history(instance, definition, asset, checks, args.days)
                result["write_s"] = round(written, 1)
                instance.dispose()
        keys = [(check, definition) for check in checks]

        def more(instance, count: int) -> None:
            with dg.partition_loading_context(effective_dt=now):
                dates = definition.get_partition_keys()
            own = [k for k in checks if k.asset_key == asset]
            HistoryWriter(instance).ranged_run(asset, own, definition, dates[-count:])

        result.update(measure(home, overrides, keys, now, more))
    finally:
        if database:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)

    timings = result["timings"]
    dates = f"{result['days']} dates" if result["days"] else str(args.home)
    print(f"\n{result['backend']}, {dates}, {len(keys)} checks")
    print(f"{'':20} {'all checks s':>13} {'per check s':>12}  equal to Dagster")
    for name, row in timings.items():
        if name == "stats":
            continue
        per = row.get("per_check_s")
        print(
            f"{name:20} {row['all_checks_s']:>13.3f} {'' if per is None else f'{per:.3f}':>12}"
            f"  {result['equal_to_dagster'][name]}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
