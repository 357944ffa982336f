"""`flower-assets` command line: run the pipeline for a range of auction dates."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from flower_assets import settings
from flower_assets.cli import runs
from flower_assets.instance_storage import InstanceDamaged
from flower_assets.sample.days import SAMPLE_PERIOD
from flower_assets.warehouse.schemas import TABLES

# The run tags of a ranged run (a backfill's run carries the same).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


@contextmanager
def local_instance() -> Iterator[dg.DagsterInstance]:
    """$DAGSTER_HOME's instance, or the repo-local one of ./dagster.yaml in ./.dagster_home."""
    if settings.env("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
        return
    home = settings.LOCAL_HOME.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = Path("dagster.yaml")
    overrides = settings.local_instance_config(config, home)
    if overrides is not None:
        # A copy in it: `DAGSTER_HOME=$PWD/.dagster_home dagster dev` opens the same instance.
        # Replaced in one step: a command starting meanwhile reads the old copy or the new one.
        text, copy = config.read_text(), home / "dagster.yaml"
        if not copy.exists() or copy.read_text() != text:
            staged = home / f".dagster.yaml.{os.getpid()}"
            staged.write_text(text)
            staged.replace(copy)
    # A persistent instance rooted in ./.dagster_home, configured as ./dagster.yaml says.
    with dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance:
        yield instance


# Runs started here do not go through a code location, so Dagster cannot label them with one.
# Labelled as the location's own runs are (repository@location, workspace.yaml's
# location_name), they are listed on flower_auction_job's page and the Overview timeline too.
RUN_LABEL_TAGS = {".dagster/repository": "__repository__@flower_assets"}


AUCTION_JOB, MARKET_JOB, REPORT_JOB = "flower_auction_job", "flower_market_job", "flower_report_job"


def materialize_range(
    start: date, end: date, instance: dg.DagsterInstance, job_name: str = AUCTION_JOB
) -> dg.ExecuteInProcessResult:
    """Run a job (by default the auction tables') for the auction dates start..end in one run."""
    from flower_assets.definitions import defs

    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        tags={
            PARTITION_RANGE_START_TAG: start.isoformat(),
            PARTITION_RANGE_END_TAG: end.isoformat(),
            **RUN_LABEL_TAGS,
            **runs.process_tags(),
        },
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )


class Refused(Exception):
    """Operator input refused before anything is called or written (exit code 2)."""


def check_settings() -> None:
    """Every FLOWER_* setting, read as the code location reads it: the first bad one refuses."""
    try:
        settings.validate()
    except ValueError as exc:
        raise Refused(str(exc)) from None


def check_dates(start: date, end: date) -> None:
    """Both dates must be auction-date partitions: FLOWER_START_DATE to yesterday in Seoul."""
    from flower_assets.defs.partitions import SEOUL_TIMEZONE, auction_date_partitions

    first_key = auction_date_partitions.get_first_partition_key()
    last_key = auction_date_partitions.get_last_partition_key()
    if first_key is None or last_key is None:
        raise Refused(
            f"{settings.START_DATE_ENV}={settings.start_date()} leaves no auction date to "
            f"materialize: it must be yesterday in {SEOUL_TIMEZONE} or earlier"
        )
    first, last = date.fromisoformat(first_key), date.fromisoformat(last_key)
    for flag, day in (("--from", start), ("--to", end)):
        if not first <= day <= last:
            raise Refused(
                f"{flag} {day} is no auction-date partition: valid dates are {first} "
                f"({settings.START_DATE_ENV}) to {last} (yesterday in {SEOUL_TIMEZONE})"
            )
    if end < start:
        raise Refused(f"--to {end} is before --from {start}")


def check_warehouse() -> None:
    """The warehouse at the code's schema: created if empty (first use), refused if behind."""
    from flower_assets.warehouse.database import Warehouse
    from flower_assets.warehouse.migrate import SchemaNotCurrent

    try:
        Warehouse.open(settings.database_url()).close()
    except (SchemaNotCurrent, ConnectionError) as exc:
        raise Refused(str(exc)) from None


def _chunk_size() -> int:
    from flower_assets.defs import assets

    return assets.BACKFILL_POLICY.max_partitions_per_run or 1


def _short(error) -> str:
    """`Class: message` of a serialized error, without the class's module path."""
    text = error.message.strip()
    head, sep, rest = text.partition(": ")
    if sep and error.cls_name and head.endswith(error.cls_name) and " " not in head:
        return f"{error.cls_name}: {rest}"
    return text


def failure_causes(error) -> list[str]:
    """The error's own message and its chained causes, without Dagster's step wrapper."""
    chain = []
    while error is not None:
        if error.cls_name != "DagsterExecutionStepExecutionError":
            chain.append(_short(error))
        error = error.cause or error.context
    return chain


def _failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step with its cause; the run's own error only when no step failed."""
    lines: list[str] = []
    for wanted in ("is_step_failure", "is_run_failure"):
        for event in result.all_events:
            error = getattr(event.event_specific_data, "error", None)
            if not getattr(event, wanted) or error is None:
                continue
            causes = failure_causes(error) or [_short(error)]
            where = f"step {event.step_key}" if event.step_key else "run"
            lines.append(f"{where} failed: {causes[0]}")
            lines.extend(f"  caused by: {cause}" for cause in causes[1:])
        if lines:
            break
    return lines


def _table_counts() -> tuple[str, dict[str, int]]:
    from flower_assets.warehouse.database import Warehouse

    with Warehouse.open(settings.database_url()) as warehouse:
        counts = {table.name: warehouse.row_count(table) for table in TABLES}
        return warehouse.location, counts


def _dates(first: date, last: date) -> str:
    n = (last - first).days + 1
    return f"{first}" if n == 1 else f"{first} to {last}, {n} dates"


def _run(args: argparse.Namespace) -> int:
    start, end = args.start, args.end or args.start
    try:
        check_settings()
        check_dates(start, end)
        check_warehouse()
    except Refused as exc:
        print(f"flower-assets materialize: {exc}", file=sys.stderr)
        return 2
    mode = (
        "sample data generated by the package"
        if not settings.env(settings.API_KEY_ENV)
        else "the aT API"
    )
    from flower_assets.defs.partitions import date_chunks

    size = _chunk_size()
    chunks = date_chunks(start, end, size)
    print(
        f"Materializing auction dates {start} to {end} from {mode} in {len(chunks)} run(s) "
        f"of at most {size} dates …",
        flush=True,
    )
    from flower_assets.defs.assets import API_POOL
    from flower_assets.steps.report import dates_between

    asked = dates_between(start, end)
    with local_instance() as instance:
        for run_id in runs.release_dead_runs(instance):
            print(
                f"Run {run_id}: its process is gone (killed or crashed); marked failed, its "
                f"pool slots freed.",
                flush=True,
            )
        try:
            runs.wait_for_pool(instance, API_POOL, lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            print("Stopped while waiting for the pool; nothing was started.", file=sys.stderr)
            return 130
        _run_chunks(instance, AUCTION_JOB, chunks, stop_early=_key_refused)
        # The market tables of these dates and of every date whose history changed, whoever
        # changed it (another run may load dates meanwhile: then build again).
        market_ok = _build_market(instance, asked, size)
        report = _write_report(instance) if market_ok else None
    location, counts = _table_counts()
    print(f"Warehouse: {location}")
    width = max(map(len, counts))
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count:>8} rows")
    if report:
        print(f"Market report: {report}")
    failed = _not_loaded(asked)
    _print_summary(asked, failed)
    # Dagster's own commands read $DAGSTER_HOME; the repo-local instance is one too.
    home = "" if settings.env("DAGSTER_HOME") else f"DAGSTER_HOME={settings.LOCAL_HOME.resolve()} "
    print(
        f"Browse the runs and assets with: {home}uv run dagster dev  (then open http://127.0.0.1:3000)"
    )
    return 1 if failed or not market_ok else 0


def _not_loaded(days: list[date]) -> dict[date, str]:
    """The dates of `days` not loaded, each with its cause, as the warehouse's logs say."""
    from flower_assets.transform.unchanged import not_loaded
    from flower_assets.warehouse.database import Warehouse

    with Warehouse.open(settings.database_url()) as warehouse:
        return not_loaded(days, *warehouse.batch_logs(days[0], days[-1]))


def _key_refused(days: list[date]) -> bool:
    """The service refused the key (quota used up, key wrong): no later run could fetch today."""
    return any(KEY_REFUSAL.search(cause) for cause in _not_loaded(days).values())


# How a refusal of the key reads in a date's cause (flower_assets.source.errors.refuses_the_key).
KEY_REFUSAL = re.compile(r"QuotaExceeded|KeyRefused|ApiRejectedRequest: .*resultCd [123]:")


def _print_summary(asked: list[date], failed: dict[date, str]) -> None:
    loaded = len(asked) - len(failed)
    print(f"Loaded: {loaded} of {len(asked)} auction dates ({_dates(asked[0], asked[-1])}).")
    if not failed:
        return
    print(f"Not loaded: {len(failed)} auction dates, each with its cause:", file=sys.stderr)
    for day, cause in sorted(failed.items()):
        print(f"  {day}  {cause}", file=sys.stderr)
    first, last = min(failed), max(failed)
    print(
        f"Once the cause is fixed: flower-assets materialize --from {first} --to {last}  "
        "(the dates already loaded come from the response cache and are not rewritten)",
        file=sys.stderr,
    )


def _build_market(instance: dg.DagsterInstance, asked: list[date], size: int) -> bool:
    """Build the market tables of `asked` and of every stale date; False if a run failed."""
    from flower_assets.defs.partitions import date_chunks
    from flower_assets.steps.market import market_dates
    from flower_assets.warehouse.database import Warehouse

    base = settings.index_base_date()
    for attempt in range(MARKET_ROUNDS):
        with Warehouse.open(settings.database_url()) as warehouse:
            dates = market_dates(warehouse, base, asked if attempt == 0 else [])
        if not dates:
            return True
        if attempt and (loading := _other_auction_runs(instance)):
            print(
                f"Auction dates changed meanwhile; {loading} is still loading dates and builds "
                "the market tables they reach when it ends.",
                flush=True,
            )
            return True
        market = date_chunks(dates[0], dates[-1], size)
        again = " again: another run changed auction records meanwhile" if attempt else ""
        print(
            f"Building the market tables of {_dates(dates[0], dates[-1])} in {len(market)} "
            f"run(s){again} …",
            flush=True,
        )
        if not _run_chunks(instance, MARKET_JOB, market):
            return False
    print(
        f"The auction records kept changing while the market tables were built ({MARKET_ROUNDS} "
        "rounds); the stale dates show in the checks built_on_current_history. Run "
        "flower-assets materialize again once the other runs have ended.",
        file=sys.stderr,
    )
    return False


def _other_auction_runs(instance: dg.DagsterInstance) -> str | None:
    """Another command's auction run still under way, described; None if there is none."""
    runs.release_dead_runs(instance)
    active = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=AUCTION_JOB,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    return runs.describe(instance, active[0].run_id) if active else None


# Market builds in a row after which the CLI leaves stale dates to the next command.
MARKET_ROUNDS = 3


def _run_chunks(
    instance: dg.DagsterInstance,
    job_name: str,
    chunks: list[tuple[date, date]],
    stop_early: Callable[[list[date]], bool] | None = None,
) -> bool:
    """Run the job chunk after chunk; True if every run succeeded.

    A failed run holds back no later one, unless `stop_early` says so of its dates.
    """
    from flower_assets.steps.report import dates_between

    succeeded = True
    for number, (first, last) in enumerate(chunks, 1):
        result = materialize_range(first, last, instance, job_name)
        run_id, success = result.run_id, result.success
        failures = [] if success else _failures(result)
        del result  # a run's events are not kept: memory stays flat over a long range
        label = f"Run {number}/{len(chunks)} {run_id} ({_dates(first, last)})"
        if success:
            print(f"{label} succeeded.", flush=True)
            continue
        succeeded = False
        for line in failures:
            print(line, file=sys.stderr)
        print(f"{label} failed.", file=sys.stderr)
        if stop_early is not None and stop_early(dates_between(first, last)):
            if last < chunks[-1][1]:
                print(
                    "Stopped: the service refused the key (see the causes below); "
                    f"{_dates(last + timedelta(days=1), chunks[-1][1])} not attempted.",
                    file=sys.stderr,
                )
            break
    return succeeded


def _write_report(instance: dg.DagsterInstance) -> str | None:
    """Materialize market_report (the last year); the file it wrote, or None."""
    from flower_assets.definitions import defs

    result = defs.resolve_job_def(REPORT_JOB).execute_in_process(
        instance=instance,
        tags={**RUN_LABEL_TAGS, **runs.process_tags()},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        print("The market report was not written: " + "; ".join(_failures(result)), file=sys.stderr)
        return None
    (materialization,) = result.asset_materializations_for_node("market_report")
    return str(materialization.metadata["report"].value)


def _report(args: argparse.Namespace) -> int:
    from flower_assets.market.coverage import NothingLoaded
    from flower_assets.steps.market import build_report
    from flower_assets.warehouse.database import Warehouse
    from flower_assets.warehouse.migrate import SchemaNotCurrent

    try:
        check_settings()
        check_dates(args.start, args.end)
        with Warehouse.open(settings.database_url()) as warehouse:
            report = build_report(warehouse, args.start, args.end)
    except (Refused, SchemaNotCurrent, ConnectionError, NothingLoaded) as exc:
        # NothingLoaded: no date of the range is loaded, as the market_report asset refuses.
        print(f"flower-assets report: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(report.html, encoding="utf-8")
    print(f"Market report of {_dates(args.start, args.end)}: {args.out.resolve()}")
    if not report.coverage.complete:
        print(
            f"Not every date is loaded ({report.coverage.text}): the report names the dates "
            "not loaded and counts none of them as a day without an auction."
        )
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from flower_assets.sample.days import SAMPLE_KEY
    from flower_assets.source.cache import estimate_backfill, key_fingerprint, kst_today
    from flower_assets.steps.report import dates_between
    from flower_assets.warehouse.database import Warehouse

    try:
        check_settings()
        check_dates(args.start, args.end)
    except Refused as exc:
        print(f"flower-assets backfill-estimate: {exc}", file=sys.stderr)
        return 2
    key = settings.env(settings.API_KEY_ENV)
    quota = settings.daily_quota()
    days = dates_between(args.start, args.end)
    with Warehouse.open(settings.database_url()) as warehouse:
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


def _db(args: argparse.Namespace) -> int:
    from flower_assets.warehouse import migrate

    try:
        check_settings()
        url = settings.database_url()
        where = migrate.location(url)
        if args.action == "current":
            revision, head = migrate.current(url), migrate.head()
            state = "at head" if revision == head else f"head is {head}: run db upgrade"
            print(f"Warehouse {where}: schema revision {revision or 'none'} ({state})")
            return 0
        before, after = migrate.upgrade(url)
    except (Refused, migrate.SchemaNotCurrent, ConnectionError) as exc:
        print(f"flower-assets db {args.action}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, Refused) else 1
    if before == after:
        print(f"Warehouse {where}: schema revision {after}, already at head; nothing to do.")
    else:
        print(f"Warehouse {where}: upgraded from schema revision {before or 'none'} to {after}.")
    return 0


def _runs(args: argparse.Namespace) -> int:
    """Mark this host's runs whose process is gone failed and free their pool slots."""
    with local_instance() as instance:
        review = runs.review_runs(instance, by=runs.RELEASE_COMMAND)
    for line in review.said + review.left_alone:
        print(line[0].upper() + line[1:] + ".")
    if not review.said:
        print("No run of this host has lost its process; nothing to release.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    first, last = SAMPLE_PERIOD
    parser = argparse.ArgumentParser(prog="flower-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "materialize",
        help="materialize the auction tables, then the market tables and the market report, "
        "for a range of auction dates, in runs of at most the backfill policy's dates (100)",
        description="Without FLOWER_API_KEY the synthetic market's sample days "
        f"({first} to {last}) are used; those are the default range. Dates must be "
        "auction-date partitions: FLOWER_START_DATE to yesterday in Asia/Seoul.",
    )
    run.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        default=first,
        help="first auction date (YYYY-MM-DD)",
    )
    run.add_argument(
        "--to",
        dest="end",
        type=date.fromisoformat,
        default=last,
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
    report = commands.add_parser(
        "report",
        help="write the market report (one self-contained HTML file) of a range of auction "
        "dates, from the stored market tables",
    )
    report.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    report.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    report.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file")
    report.set_defaults(handler=_report)
    db = commands.add_parser("db", help="the warehouse's schema: upgrade it, or show its revision")
    db.add_argument(
        "action",
        choices=["upgrade", "current"],
        help="upgrade: apply the missing migrations under a lock (a warehouse created before "
        "migrations is adopted); current: print its revision",
    )
    db.set_defaults(handler=_db)
    dead = commands.add_parser(
        "runs",
        help="release: mark this host's runs whose process is gone (kill -9, OOM) failed and free "
        "their pool slots (dagster-daemon does it every 30 s; this is for when it is not running)",
    )
    dead.add_argument("action", choices=["release"])
    dead.set_defaults(handler=_runs)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except InstanceDamaged as exc:  # left so by older code: the message says how to repair it
        print(f"flower-assets {args.command}: {exc}", file=sys.stderr)
        return 1
