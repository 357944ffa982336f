"""`flower-assets` command line: run the pipeline for a range of auction dates."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from flower_assets import settings
from flower_assets.sample import sample_days
from flower_assets.schemas import TABLES


@contextmanager
def local_instance() -> Iterator[dg.DagsterInstance]:
    """$DAGSTER_HOME's instance, or the repo-local one of ./dagster.yaml in ./.dagster_home."""
    if settings.env("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
        return
    home = settings.LOCAL_HOME.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config_dir = str(Path.cwd()) if Path("dagster.yaml").exists() else None
    with dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(home), config_dir=config_dir)
    ) as instance:
        yield instance


# Runs started here do not go through a code location, so Dagster cannot label them with one.
# Labelled as the location's own runs are (repository@location, workspace.yaml's
# location_name), they are listed on flower_auction_job's page and the Overview timeline too.
RUN_LABEL_TAGS = {".dagster/repository": "__repository__@flower_assets"}


def materialize_range(
    start: date, end: date, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """Run the whole asset graph for the auction dates start..end in one run."""
    from flower_assets.definitions import defs

    job = defs.resolve_job_def("flower_auction_job")
    return job.execute_in_process(
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
            **RUN_LABEL_TAGS,
        },
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )


def _table_counts() -> tuple[str, dict[str, int]]:
    from flower_assets.warehouse import Warehouse

    with Warehouse.open(settings.database_url()) as warehouse:
        warehouse.ensure_schema()
        counts = {table.name: warehouse.read_table(table).height for table in TABLES}
        return warehouse.location, counts


def _run(args: argparse.Namespace) -> int:
    start, end = args.start, args.end or args.start
    if end < start:
        print(f"--to {end} is before --from {start}", file=sys.stderr)
        return 2
    mode = (
        "sample data bundled with the package"
        if not settings.env(settings.API_KEY_ENV)
        else "the aT API"
    )
    print(f"Materializing auction dates {start} to {end} from {mode} …", flush=True)
    with local_instance() as instance:
        result = materialize_range(start, end, instance)
        run_id = result.run_id
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_key:
                print(
                    f"step {event.step_key} failed: {event.event_specific_data.error.message.strip()}",
                    file=sys.stderr,
                )
        print(f"Run {run_id} failed.", file=sys.stderr)
        return 1
    location, counts = _table_counts()
    print(f"Run {run_id} succeeded. Warehouse: {location}")
    width = max(map(len, counts))
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count:>8} rows")
    print("Browse the runs and assets with: uv run dagster dev  (then open http://127.0.0.1:3000)")
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from flower_assets.sample import SAMPLE_KEY
    from flower_assets.source import estimate_backfill, key_fingerprint, kst_today
    from flower_assets.warehouse import Warehouse

    if args.end < args.start:
        print(f"--to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    key = settings.env(settings.API_KEY_ENV)
    quota = settings.daily_quota()
    days = [args.start + timedelta(days=n) for n in range((args.end - args.start).days + 1)]
    with Warehouse.open(settings.database_url()) as warehouse:
        warehouse.ensure_schema()
        cached = warehouse.cached_dates(args.start, args.end)
        used = warehouse.api_calls_on(key_fingerprint(key or SAMPLE_KEY), kst_today())
    estimate = estimate_backfill(
        days, cached, kst_today(), settings.correction_days(), quota - used, quota
    )
    print(f"Auction dates {args.start} to {args.end}: {estimate.dates} dates × 4 categories")
    print(f"  answers already in the raw response cache: {estimate.answers_cached}")
    print(f"  API calls needed:                          {estimate.calls_needed}")
    print(f"  calls left today (KST) for this key:       {max(quota - used, 0)} of {quota}")
    if not key:
        print("  FLOWER_API_KEY is unset: sample mode makes no real API calls.")
    start = (
        "today" if estimate.calls_left_today > 0 else "after midnight KST (nothing is left today)"
    )
    print(f"The backfill spans {estimate.quota_days} quota day(s), starting {start}.")
    if estimate.quota_days > 1:
        print(
            "Each day it stops with QuotaExceeded once the quota is used up; run it again the next"
            " day and the answers already cached cost nothing."
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    days = sorted(sample_days())
    parser = argparse.ArgumentParser(prog="flower-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "materialize",
        help="materialize all four tables for a range of auction dates in one Dagster run",
        description="Without FLOWER_API_KEY the bundled sample days "
        f"({days[0]} to {days[-1]}) are used; those are the default range.",
    )
    run.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        default=days[0],
        help="first auction date (YYYY-MM-DD)",
    )
    run.add_argument(
        "--to",
        dest="end",
        type=date.fromisoformat,
        default=days[-1],
        help="last auction date, inclusive",
    )
    run.set_defaults(handler=_run)
    estimate = commands.add_parser(
        "backfill-estimate",
        help="API calls a backfill of a date range needs, against what the key has left today",
    )
    estimate.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    estimate.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    estimate.set_defaults(handler=_estimate)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
