"""`flower-assets` command line: run the pipeline for a range of auction dates."""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

import dagster as dg

from flower_assets import settings
from flower_assets.cli import launch, runs
from flower_assets.instance_storage import InstanceDamaged
from flower_assets.sample.days import SAMPLE_PERIOD
from flower_assets.warehouse.schemas import TABLES

# The run tags of a ranged run (a backfill's run carries the same).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


@contextmanager
def local_instance() -> Iterator[dg.DagsterInstance]:
    """$DAGSTER_HOME's instance, or the repo-local one of ./dagster.yaml in ./.dagster_home."""
    if settings.dagster_home.is_set():
        with dg.DagsterInstance.get() as instance:
            yield instance
        return
    home, overrides = _local_home()
    # A persistent instance rooted in ./.dagster_home, configured as ./dagster.yaml says.
    with dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance:
        yield instance


def _local_home() -> tuple[Path, dict | None]:
    """./.dagster_home with a copy of ./dagster.yaml, and that file's config for it."""
    home = settings.LOCAL_HOME.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = Path("dagster.yaml")
    overrides = settings.local_instance_config(config, home)
    if overrides is not None:
        # A copy in it: Dagster's own commands with DAGSTER_HOME=.dagster_home open the same
        # instance. Replaced in one step: a command starting meanwhile reads the old or the new.
        text, copy = config.read_text(), home / "dagster.yaml"
        if not copy.exists() or copy.read_text() != text:
            staged = home / f".dagster.yaml.{os.getpid()}"
            staged.write_text(text)
            staged.replace(copy)
    return home, overrides


def instance_home() -> Path:
    """The instance directory the commands use: $DAGSTER_HOME, or ./.dagster_home."""
    if home := settings.dagster_home():
        return home.resolve()
    return _local_home()[0]


AUCTION_JOB, MARKET_JOB, REPORT_JOB = "flower_auction_job", "flower_market_job", "flower_report_job"

# No automatic retry of a run this command started: with run retries on (deploy/postgres) the
# daemon would re-run a run that failed (a blocked or failed date, Ctrl-C, a killed process)
# behind the command's back. The command names such dates and how to load them again.
NO_RETRY_TAGS = {"dagster/max_retries": "0"}
# Dagster's console log of each run: every step's INFO lines and up. They go to the command's log
# file, or to the terminal with --verbose.
LOG_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def range_tags(start: date, end: date) -> dict[str, str]:
    return {PARTITION_RANGE_START_TAG: start.isoformat(), PARTITION_RANGE_END_TAG: end.isoformat()}


def create_run(
    instance: dg.DagsterInstance, job_name: str, tags: dict[str, str] | None = None
) -> dg.DagsterRun:
    """A run of the code location's job, labelled with this process (cli/runs.py); not started."""
    tags = {**(tags or {}), **NO_RETRY_TAGS, **runs.process_tags()}
    return launch.create_run(instance, job_name, tags, LOG_CONFIG)


def materialize_range(
    start: date, end: date, instance: dg.DagsterInstance, job_name: str = AUCTION_JOB
):
    """Run a job (by default the auction tables') for the auction dates start..end in one run.

    The run executes here and now, and shows in the UI as a run of the code location.
    """
    return launch.execute(instance, create_run(instance, job_name, range_tags(start, end)))


class Refused(Exception):
    """Operator input refused before anything is called or written (exit code 2)."""


def check_settings() -> None:
    """Every setting, checked as the code location checks it: one line per refused value."""
    try:
        settings.validate()
    except ValueError as exc:
        raise Refused(str(exc)) from None


def check_dates(start: date, end: date) -> None:
    """Both dates must be auction-date partitions (see defs/partitions.py)."""
    from flower_assets.defs.partitions import auction_date_partitions, partitions_label

    first_key = auction_date_partitions.get_first_partition_key()
    last_key = auction_date_partitions.get_last_partition_key()
    if first_key is None or last_key is None:
        raise Refused(
            f"no auction date to materialize: the partitions run from {partitions_label()}"
        )
    first, last = date.fromisoformat(first_key), date.fromisoformat(last_key)
    for flag, day in (("--from", start), ("--to", end)):
        if not first <= day <= last:
            raise Refused(
                f"{flag} {day} is no auction-date partition: valid dates are {partitions_label()}"
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
    from flower_assets.defs import dated

    return dated.BACKFILL_POLICY.max_partitions_per_run or 1


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


def _failures(result) -> list[str]:
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


def _one_line(lines: list[str]) -> str:
    """A failure's cause on one line: the first failure and its root cause."""
    if not lines:
        return "no cause recorded (see the log)"
    first = lines[0]
    root = next((line.strip() for line in reversed(lines) if line.startswith("  caused by:")), "")
    return f"{first}; {root.removeprefix('caused by: ')}" if root else first


def _table_counts() -> tuple[str, dict[str, int]]:
    from flower_assets.warehouse.database import Warehouse

    with Warehouse.open(settings.database_url()) as warehouse:
        counts = {table.name: warehouse.row_count(table) for table in TABLES}
        return warehouse.location, counts


def _dates(first: date, last: date) -> str:
    n = (last - first).days + 1
    return f"{first}" if n == 1 else f"{first} to {last}, {n} dates"


def _span(first: date, last: date) -> str:
    """2024-05-06 to 2024-05-12 (7 dates), or one date."""
    n = (last - first).days + 1
    return f"{first}" if n == 1 else f"{first} to {last} ({n} dates)"


def _clock(seconds: float) -> str:
    """12 s, 3 min 05 s, 1 h 02 min."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Interrupted(Exception):
    """Ctrl-C: the run under way ended (Dagster marks it failed); nothing later is started."""


class RunOutput(io.TextIOBase):
    """`sys.stderr` while a run executes: Dagster's log lines to the log file only.

    Anything else written there (a pool-wait advice, a warning) reaches the terminal too.
    Dagster's console logger writes each record, traceback included, in one call that starts
    with its time stamp; it reads `sys.stderr` at every record (coloredlogs'
    StandardErrorHandler), and colours it when stdout is a terminal: the file gets no colours.
    """

    COLOUR = re.compile(r"\x1b\[[\d;]*m")
    DAGSTER_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - ")

    def __init__(self, log: TextIO, terminal: TextIO) -> None:
        self.log, self.terminal = log, terminal

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        plain = self.COLOUR.sub("", text)
        self.log.write(plain)
        if not self.DAGSTER_LINE.match(plain):
            self.terminal.write(text)
            self.terminal.flush()
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def fileno(self) -> int:
        return self.log.fileno()


class Console:
    """What the command prints: its own lines on the terminal, Dagster's run logs in a file.

    Without --verbose, each run's Dagster log lines go to a log file under the instance
    directory (`RunOutput`). On a terminal, a line updated every second shows the run under
    way; it is written to the terminal itself, because during a run Dagster copies the
    process's output into the run's compute logs.
    """

    def __init__(self, verbose: bool) -> None:
        self.out, self.err = sys.stdout, sys.stderr
        self.log_path: Path | None = None
        self.log: TextIO | None = None
        if not verbose:
            home = (settings.dagster_home() or settings.LOCAL_HOME).resolve()
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.log_path = home / "logs" / f"flower-assets-{stamp}-{os.getpid()}.log"
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = self.log_path.open("a", encoding="utf-8", buffering=1)
        self.live: TextIO | None = None
        if not verbose and self.out.isatty():
            self.live = os.fdopen(os.dup(self.out.fileno()), "w", encoding="utf-8", buffering=1)

    def close(self) -> None:
        for stream in (self.log, self.live):
            if stream is not None:
                stream.close()

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        if self.log is not None:
            print(line, file=self.log)

    def warn(self, line: str) -> None:
        print(line, file=self.err, flush=True)
        if self.log is not None:
            print(line, file=self.log)

    @contextmanager
    def running(self, status: Callable[[], str]) -> Iterator[None]:
        """While a run executes: its Dagster log lines to the log file, the live line ticking."""
        stop = threading.Event()
        ticker = None
        if self.live is not None:
            live, width = self.live, max(shutil.get_terminal_size().columns - 1, 20)

            def tick() -> None:
                while not stop.wait(1.0):
                    live.write("\r\033[K" + status()[:width])
                    live.flush()

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        try:
            if self.log is None:
                yield
            else:
                with redirect_stderr(RunOutput(self.log, self.err)):
                    yield
        finally:
            if ticker is not None and self.live is not None:
                stop.set()
                ticker.join()
                self.live.write("\r\033[K")
                self.live.flush()


class Progress:
    """Dates done of the total, time taken and an estimate of the rest, over a command's runs."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.began = total, 0, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def status(self) -> str:
        said = f"{self.done} of {self.total} dates done, {_clock(self.elapsed())} elapsed"
        if 0 < self.done < self.total:
            left = self.elapsed() / self.done * (self.total - self.done)
            said += f", about {_clock(left)} left"
        return said


@dataclass
class RunOutcome:
    run_id: str
    job_name: str
    first: date
    last: date
    success: bool
    failures: list[str]


@dataclass
class Runs:
    """The runs of one job that the command ran, in order."""

    outcomes: list[RunOutcome] = field(default_factory=list)
    # Failed checks of severity WARN (the dates loaded all the same): evaluations per check.
    warnings: Counter[str] = field(default_factory=Counter)

    @property
    def succeeded(self) -> bool:
        return all(outcome.success for outcome in self.outcomes)


class Stop:
    """Ctrl-C: noted, then raised as KeyboardInterrupt where the command is."""

    def __init__(self) -> None:
        self.pressed = False

    def __call__(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    start, end = args.start, args.end or args.start
    try:
        check_settings()
        check_dates(start, end)
        check_warehouse()
    except Refused as exc:
        print(f"flower-assets materialize: {exc}", file=sys.stderr)
        return 2
    console = Console(args.verbose)
    stop = Stop()
    previous = signal.signal(signal.SIGINT, stop)
    try:
        return _materialize(start, end, console, stop)
    except Interrupted as exc:
        console.warn(f"Stopped (Ctrl-C): {exc}")
        return 130
    except KeyboardInterrupt:
        console.warn("Stopped (Ctrl-C).")
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        console.close()


def _materialize(start: date, end: date, console: Console, stop: Stop) -> int:
    from flower_assets.defs.auction.assets import API_POOL
    from flower_assets.defs.partitions import date_chunks
    from flower_assets.steps.report import dates_between

    mode = "the aT API" if settings.is_live() else "sample data generated by the package"
    size = _chunk_size()
    chunks = date_chunks(start, end, size)
    asked = dates_between(start, end)
    console.say(
        f"Materializing auction dates {_span(start, end)} from {mode}, in {len(chunks)} "
        f"run{'s' if len(chunks) > 1 else ''} of at most {size} dates."
    )
    if console.log_path is not None:
        console.say(f"Dagster's log of the runs: {console.log_path}  (--verbose shows it here)")
    with local_instance() as instance:
        for run_id in runs.release_dead_runs(instance):
            console.say(
                f"Run {run_id}: its process is gone (killed or crashed); marked failed, its "
                f"pool slots freed."
            )
        try:
            runs.wait_for_pool(instance, API_POOL, console.say)
        except KeyboardInterrupt:
            console.warn("Stopped while waiting for the pool; nothing was started.")
            return 130
        auction = _run_chunks(instance, AUCTION_JOB, chunks, console, stop, stop_early=_key_refused)
        # The market tables of these dates and of every date whose history changed, whoever
        # changed it (another run may load dates meanwhile: then build again).
        market, market_problem = _build_market(instance, asked, size, console, stop)
        report, report_problem = (
            _write_report(instance, console, stop) if market_problem is None else (None, None)
        )
        _refresh_check_states(instance, console)
    if report:
        console.say(f"Market report: {report}")
    location, counts = _table_counts()
    console.say(f"Warehouse: {location}")
    width = max(map(len, counts))
    for name, count in counts.items():
        console.say(f"  {name:<{width}}  {count:>8} rows")
    dates = _classify(asked, auction)
    problems = [p for p in (market_problem, report_problem) if p]
    problems += _unexplained_failures(auction, dates) + _unexplained_failures(market, {})
    _print_summary(console, asked, dates, problems, auction.warnings + market.warnings)
    console.say(
        "Browse the runs and assets: uv run flower-assets ui  (then open http://127.0.0.1:3000)"
    )
    blocked, failed = dates["blocked"], dates["failed"]
    if blocked or failed or problems:
        said = [f"{len(blocked)} blocked"] * bool(blocked) + [f"{len(failed)} failed"] * bool(
            failed
        )
        what = (
            f"{len(blocked) + len(failed)} of {len(asked)} auction dates not loaded "
            f"({', '.join(said)})"
            if said
            else f"{len(problems)} run(s) failed"
        )
        console.warn(f"flower-assets materialize: {what}; see the summary above.")
        return 1
    return 0


def _classify(asked: list[date], auction: Runs) -> dict[str, dict[date, str]]:
    """Each asked date as loaded, unchanged, blocked or failed; the last two with their cause.

    loaded: this command wrote its answer to the tables (new or changed); unchanged: the answer
    was the one already loaded, so nothing was rewritten; blocked: its answer is stored but a
    blocking check keeps it out of the tables; failed: any other cause (fetch, load, not run).
    """
    from flower_assets.transform import unchanged
    from flower_assets.warehouse.database import Warehouse

    ours = {outcome.run_id for outcome in auction.outcomes}
    with Warehouse.open(settings.database_url()) as warehouse:
        uploads, processes = warehouse.batch_logs(asked[0], asked[-1])
    causes = unchanged.not_loaded(asked, uploads, processes)
    latest = {
        day: status
        for day, status in uploads.sort("finished_at")
        .group_by("auction_date", maintain_order=True)
        .last()
        .select("auction_date", "status")
        .rows()
    }
    written = {
        day
        for day, asset, status, run_id in processes.select(
            "auction_date", "asset", "status", "run_id"
        ).rows()
        if asset == "bidding_flowers" and status == unchanged.LOADABLE and run_id in ours
    }
    dates: dict[str, dict[date, str]] = {
        k: {} for k in ("loaded", "unchanged", "blocked", "failed")
    }
    for day in asked:
        if day in causes:
            kind = "blocked" if latest.get(day) == unchanged.BLOCKED else "failed"
            dates[kind][day] = causes[day]
        else:
            dates["loaded" if day in written else "unchanged"][day] = ""
    return dates


def _unexplained_failures(ran: Runs, dates: dict[str, dict[date, str]]) -> list[str]:
    """Failed runs none of whose dates is blocked or failed: their own cause, one line each."""
    named = {*dates.get("blocked", {}), *dates.get("failed", {})}
    problems = []
    for outcome in ran.outcomes:
        if outcome.success:
            continue
        days = {
            outcome.first + timedelta(days=n)
            for n in range((outcome.last - outcome.first).days + 1)
        }
        if days & named:
            continue
        problems.append(
            f"run {outcome.run_id} of {outcome.job_name} ({_dates(outcome.first, outcome.last)})"
            f" failed: {_one_line(outcome.failures)}"
        )
    return problems


def _refresh_check_states(instance: dg.DagsterInstance, console: Console) -> None:
    """Bring the check states the event log keeps up to date with these runs, so that the UI's
    first view after the command does not compute them (flower_assets/check_state_checkpoint)."""
    from flower_assets.check_state_checkpoint import CheckpointedCheckState, refresh_location

    if not isinstance(instance.event_log_storage, CheckpointedCheckState):
        return
    try:
        refresh_location(instance)
    except Exception as exc:
        console.warn(
            f"The check states the UI shows were not brought up to date "
            f"({type(exc).__name__}: {exc}); the UI computes them when first opened."
        )


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


def _print_summary(
    console: Console,
    asked: list[date],
    dates: dict[str, dict[date, str]],
    problems: list[str],
    warnings: Counter[str],
) -> None:
    """One summary: how many dates loaded, unchanged, blocked, failed, and each cause."""
    loaded, unchanged_, blocked, failed = (
        dates[k] for k in ("loaded", "unchanged", "blocked", "failed")
    )
    console.say(f"Summary of auction dates {_span(asked[0], asked[-1])}:")
    console.say(f"  loaded     {len(loaded):>4}  new or changed answers, written to the tables")
    console.say(f"  unchanged  {len(unchanged_):>4}  the answers already loaded: nothing rewritten")
    console.say(
        f"  blocked    {len(blocked):>4}  answers stored, but kept out of the tables by a "
        "blocking check"
    )
    for day, cause in sorted(blocked.items()):
        console.say(f"    {day}  {cause}")
    console.say(f"  failed     {len(failed):>4}  not loaded: the fetch or the load failed")
    for day, cause in sorted(failed.items()):
        console.say(f"    {day}  {cause}")
    for problem in problems:
        console.say(f"  {problem}")
    if warnings:
        counted = ", ".join(f"{name} {n}" for name, n in sorted(warnings.items()))
        console.say(
            f"  check warnings (dates loaded all the same; see each asset's Checks in the UI): "
            f"{counted}"
        )
    if blocked or failed:
        first, last = min([*blocked, *failed]), max([*blocked, *failed])
        console.say(
            f"Once the causes are fixed: flower-assets materialize --from {first} --to {last}  "
            "(the dates already loaded come from the response cache and are not rewritten)"
        )


def _build_market(
    instance: dg.DagsterInstance, asked: list[date], size: int, console: Console, stop: Stop
) -> tuple[Runs, str | None]:
    """Build the market tables of `asked` and of every stale date; why not, if a run failed."""
    from flower_assets.defs.market.plan import plan_market
    from flower_assets.warehouse.database import Warehouse

    base = settings.index_base_date()
    built = Runs()
    for attempt in range(MARKET_ROUNDS):
        with Warehouse.open(settings.database_url()) as warehouse:
            market = plan_market(warehouse, base, asked if attempt == 0 else [], size).runs
        if not market:
            return built, None
        if attempt and (loading := _other_auction_runs(instance)):
            console.say(
                f"Auction dates changed meanwhile; {loading} is still loading dates and builds "
                "the market tables they reach when it ends."
            )
            return built, None
        again = " again: another run changed auction records meanwhile" if attempt else ""
        console.say(
            f"Building the market tables of {_span(market[0][0], market[-1][1])} in {len(market)} "
            f"run{'s' if len(market) > 1 else ''}{again}."
        )
        ran = _run_chunks(instance, MARKET_JOB, market, console, stop)
        built.outcomes += ran.outcomes
        if not ran.succeeded:
            return built, None  # the failed runs are in the summary
    return built, (
        f"market tables: the auction records kept changing while they were built "
        f"({MARKET_ROUNDS} rounds); the stale dates show in the checks built_on_current_history. "
        "Run flower-assets materialize again once the other runs have ended."
    )


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


def _execute(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    console: Console,
    stop: Stop,
    status: Callable[[], str],
):
    """Execute a created run here; Ctrl-C ends it and raises Interrupted."""
    with console.running(status):
        result = launch.execute(instance, run)
    if stop.pressed or _interrupted(result):
        raise Interrupted(
            f"run {run.run_id} of {run.job_name} was interrupted and is marked failed; "
            "nothing later was started. The dates already loaded stay loaded: run the same "
            "command again to complete the rest."
        )
    return result


# How Ctrl-C ends a run: while a run executes Dagster takes SIGINT over and interrupts the step
# under way with this error (outside a step, Python's KeyboardInterrupt).
INTERRUPTS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}


def _interrupted(result) -> bool:
    """The run ended because of Ctrl-C."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            if error.cls_name in INTERRUPTS:
                return True
            error = error.cause or error.context
    return False


def _check_warnings(result) -> Counter[str]:
    """The run's failed checks of severity WARN, counted per check (one evaluation a date)."""
    found: Counter[str] = Counter()
    for event in result.all_events:
        evaluation = event.event_specific_data
        if (
            event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            and isinstance(evaluation, dg.AssetCheckEvaluation)
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.WARN
        ):
            found[evaluation.check_name] += 1
    return found


def _run_chunks(
    instance: dg.DagsterInstance,
    job_name: str,
    chunks: list[tuple[date, date]],
    console: Console,
    stop: Stop,
    stop_early: Callable[[list[date]], bool] | None = None,
) -> Runs:
    """Run the job chunk after chunk, printing each run's outcome and the progress.

    A failed run holds back no later one, unless `stop_early` says so of its dates.
    """
    from flower_assets.steps.report import dates_between

    ran = Runs()
    progress = Progress(sum((last - first).days + 1 for first, last in chunks))
    for number, (first, last) in enumerate(chunks, 1):
        run = create_run(instance, job_name, range_tags(first, last))
        label = f"Run {number}/{len(chunks)} {run.run_id} ({_dates(first, last)})"
        short = f"Run {number}/{len(chunks)} {run.run_id[:8]}"  # the live line: one terminal line
        began = time.monotonic()
        result = _execute(
            instance,
            run,
            console,
            stop,
            lambda short=short, began=began: (
                f"{short} running for {_clock(time.monotonic() - began)} · {progress.status()}"
            ),
        )
        success = result.success
        failures = [] if success else _failures(result)
        ran.warnings.update(_check_warnings(result))
        del result  # a run's events are not kept: memory stays flat over a long range
        ran.outcomes.append(RunOutcome(run.run_id, job_name, first, last, success, failures))
        progress.done += (last - first).days + 1
        took = _clock(time.monotonic() - began)
        if success:
            console.say(f"{label} succeeded in {took} · {progress.status()}")
            continue
        console.warn(f"{label} failed in {took} · {progress.status()}")
        if stop_early is not None and stop_early(dates_between(first, last)):
            if last < chunks[-1][1]:
                console.warn(
                    "Stopped: the service refused the key (see the causes below); "
                    f"{_dates(last + timedelta(days=1), chunks[-1][1])} not attempted."
                )
            break
    return ran


def _write_report(
    instance: dg.DagsterInstance, console: Console, stop: Stop
) -> tuple[str | None, str | None]:
    """Materialize market_report (the last year): the file it wrote, or why not."""
    run = create_run(instance, REPORT_JOB)
    result = _execute(
        instance, run, console, stop, lambda: f"Writing the market report: run {run.run_id[:8]}"
    )
    if not result.success:
        return None, f"market report: not written: {_one_line(_failures(result))}"
    (materialization,) = result.asset_materializations_for_node("market_report")
    return str(materialization.metadata["report"].value), None


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
    from flower_assets.source.quota import ApiQuota
    from flower_assets.source.responses import ResponseCache
    from flower_assets.steps.report import dates_between
    from flower_assets.warehouse.database import Warehouse

    try:
        check_settings()
        check_dates(args.start, args.end)
    except Refused as exc:
        print(f"flower-assets backfill-estimate: {exc}", file=sys.stderr)
        return 2
    key = settings.api_key()
    quota = settings.daily_quota()
    days = dates_between(args.start, args.end)
    with Warehouse.open(settings.database_url()) as warehouse:
        cached = ResponseCache(warehouse).dates(args.start, args.end)
        used = ApiQuota(warehouse).calls_on(key_fingerprint(key or SAMPLE_KEY), kst_today())
    estimate = estimate_backfill(
        days, cached, kst_today(), settings.correction_days(), quota - used, quota
    )
    print(f"Auction dates {args.start} to {args.end}: {estimate.dates} dates × 4 categories")
    print(f"  answers already in the raw response cache: {estimate.answers_cached}")
    print(f"  API calls needed:                          {estimate.calls_needed}")
    print(f"  calls left today (KST) for this key:       {max(quota - used, 0)} of {quota}")
    if not settings.is_live():
        print(f"  {settings.api_key.variable} is unset: sample mode makes no real API calls.")
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


def _ui(args: argparse.Namespace) -> int:
    """Dagster's UI and daemon (`dagster dev`) on the instance the other commands use."""
    home = instance_home()
    workspace = Path("workspace.yaml").resolve()
    where = ["-w", str(workspace)] if workspace.exists() else ["-m", "flower_assets.definitions"]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        # `dagster dev` is what starts the UI and the daemon together; its notice that `dg dev`
        # supersedes it is meant for Dagster projects laid out for dg, not for this command.
        # The others: launch.KNOWN_NOTICES.
        "PYTHONWARNINGS": "ignore:Function `dev_command` is superseded,"
        + launch.known_notices_env(),
    }
    print(f"Dagster UI on http://{args.host}:{args.port} over the instance in {home}", flush=True)
    # Started in the instance directory: Dagster warns of a dagster.yaml in the working
    # directory that is not the instance's, and ./dagster.yaml is the instance's only by copy.
    os.chdir(home)
    command = ["dagster", "dev", *where, "-h", args.host, "-p", str(args.port)]
    executable = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    os.execvpe(executable, command, env)  # Ctrl-C reaches dagster dev itself


def main(argv: Sequence[str] | None = None) -> int:
    first, last = SAMPLE_PERIOD
    parser = argparse.ArgumentParser(prog="flower-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "materialize",
        help="materialize the auction tables, then the market tables and the market report, "
        "for a range of auction dates, in runs of at most the backfill policy's dates (100)",
        description="Without FLOWER_API_KEY the synthetic market's sample days "
        f"({first} to {last}) are used: the default range, and the only auction-date "
        "partitions. With it, dates run from FLOWER_START_DATE to yesterday in Asia/Seoul.",
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
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show Dagster's log lines of every run here, instead of in the log file under "
        "$DAGSTER_HOME/logs",
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
    ui = commands.add_parser(
        "ui",
        help="the Dagster UI and daemon (dagster dev) on the instance the other commands use: "
        "$DAGSTER_HOME, or ./.dagster_home",
    )
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except InstanceDamaged as exc:  # left so by older code: the message says how to repair it
        print(f"flower-assets {args.command}: {exc}", file=sys.stderr)
        return 1
