"""Which process runs each run, and what a killed one leaves behind.

A run executed inside a CLI process (`flower-assets materialize`, `dagster asset materialize`)
has no run launcher, and Dagster's default run launcher (daemon, UI) cannot check its workers'
health either: when the process is killed (kill -9, OOM, a lost machine), nothing in Dagster
notices. The run stays "started" for ever and keeps its slot of the `flower_api` pool, and every
later run waits for that slot, silently.

Each run is therefore tagged with its host, process id and the process's start time: the
`flower-assets` CLI tags its runs when it creates them, and the auction steps tag the run they
run in, whoever launched it (`record_process`). A run of this host whose process is gone (or
whose process id now belongs to another process) is marked failed and its pool slots freed
(`release_dead_runs`): by the `release_dead_runs` sensor that dagster-daemon evaluates every 30 s,
by the CLI before it starts a run, and by `flower-assets runs release`. A run of another host is
never judged: its process cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

HOST_TAG = "flower/host"
PID_TAG = "flower/pid"
# The process's start time (clock ticks since boot, /proc/<pid>/stat): a process id reused by a
# later process does not keep a dead run alive. Absent where /proc is not.
PID_START_TAG = "flower/pid_start"
# Tags of runs started by flower-assets before these (host, pid): still read.
_OLD_TAGS = ("flower/cli_host", "flower/cli_pid")
# Statuses of a run that may still hold a pool slot.
ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _stat(pid: int) -> tuple[str, str] | None:
    """The process's state letter and start time, or None without /proc or such a process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], fields[19]


def process_tags() -> dict[str, str]:
    """Tags that let a later check tell whether this process still runs the run."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    if stat := _stat(os.getpid()):
        tags[PID_START_TAG] = stat[1]
    return tags


def record_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag the run with the process that executes it, unless it already carries these tags.

    Called when the run's resources start (WarehouseResource), in the run's own process
    (in_process_executor) and before any step claims a pool slot, whoever launched the run.
    """
    tags = process_tags()
    if any(run.tags.get(k) != v for k, v in tags.items()):
        instance.add_run_tags(run.run_id, tags)


def _process_of(run: dg.DagsterRun) -> tuple[str, int, str | None] | None:
    """(host, pid, start time) recorded for the run, or None if none was."""
    host = run.tags.get(HOST_TAG) or run.tags.get(_OLD_TAGS[0])
    pid = run.tags.get(PID_TAG) or run.tags.get(_OLD_TAGS[1])
    if not host or not pid:
        return None
    return host, int(pid), run.tags.get(PID_START_TAG)


def _alive(pid: int, started: str | None) -> bool:
    if stat := _stat(pid):
        state, start = stat
        # A zombie has ended (its parent has not reaped it yet); another start time: reused.
        return state != "Z" and (started is None or start == started)
    if Path("/proc/self/stat").exists():
        return False  # /proc is there, the process is not
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _pools_held(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    held = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        if any(s.run_id == run_id for s in info.claimed_slots) or any(
            s.run_id == run_id for s in info.pending_steps
        ):
            held.append(pool)
    return held


@dataclass
class Review:
    """What one look at this host's runs did: released runs, and the runs left alone, why."""

    released: list[str] = field(default_factory=list)  # run ids
    said: list[str] = field(default_factory=list)  # one line per released run
    left_alone: list[str] = field(default_factory=list)  # one line per run not judged


def review_runs(instance: dg.DagsterInstance, by: str) -> Review:
    """Mark this host's runs whose process is gone as failed and free their pool slots.

    `by` names who does it, for the run's failure message. Runs of other hosts, and runs no step
    has tagged yet, are left alone (a live run is never marked failed).
    """
    here = socket.gethostname()
    review = Review()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)):
        process = _process_of(run)
        if process is None:
            review.left_alone.append(
                f"run {run.run_id} ({run.job_name}): its process is not recorded yet; left alone"
            )
            continue
        host, pid, started = process
        if host != here:
            review.left_alone.append(
                f"run {run.run_id} ({run.job_name}): its process {pid} is on host {host}, not "
                f"this host ({here}); left alone"
            )
            continue
        if _alive(pid, started):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in ACTIVE:
            continue  # it ended meanwhile
        pools = _pools_held(instance, run.run_id)
        freed = f"freed its {', '.join(pools)} slot" if pools else "it held no pool slot"
        instance.report_run_failed(
            current,
            f"Its process {pid} on {host} is gone (killed or crashed): marked failed by {by}; "
            f"{freed}.",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        review.released.append(run.run_id)
        review.said.append(
            f"marked run {run.run_id} ({run.job_name}) failed: its process {pid} on {host} is "
            f"gone; {freed}"
        )
    return review


def release_dead_runs(instance: dg.DagsterInstance, by: str = "flower-assets") -> list[str]:
    """The run ids `review_runs` marked failed."""
    return review_runs(instance, by).released


def holders(instance: dg.DagsterInstance, pool: str) -> set[str]:
    """Run ids holding the pool's slots when all of its slots are taken, else none."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    if info.limit is None or len(info.claimed_slots) < info.limit:
        return set()
    return set(info.active_run_ids)


RELEASE_COMMAND = "flower-assets runs release"


def wait_advice(instance: dg.DagsterInstance, pool: str, waiting_run_id: str | None) -> str | None:
    """What a run waiting for the pool waits for, and what to do about it; None: no holder."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    held = ({s.run_id for s in info.claimed_slots} | info.assigned_run_ids) - {waiting_run_id}
    lines = []
    here = socket.gethostname()
    for run_id in sorted(held):
        run = instance.get_run_by_id(run_id)
        process = _process_of(run) if run is not None else None
        holder = describe(instance, run_id)
        if run is None or run.status not in ACTIVE:
            lines.append(
                f"{holder} has ended; dagster-daemon frees its slot 30 s after its end "
                "(run_monitoring.free_slots_after_run_end_seconds)."
            )
        elif process is None:
            lines.append(
                f"{holder} has not recorded its process: if it is gone, terminate the run in the "
                f"UI (Terminate, force) or free its slot under Deployment > Concurrency > {pool}."
            )
        elif process[0] != here:
            lines.append(
                f"{holder} runs on another host: if that machine is lost, terminate the run in "
                f"the UI (Terminate, force) or free its slot under Deployment > Concurrency > {pool}."
            )
        elif _alive(process[1], process[2]):
            lines.append(f"{holder} is running: this run goes on once it ends.")
        else:
            lines.append(
                f"{holder}: its process is gone (killed or crashed), but the run still holds the "
                f"slot. dagster-daemon (its sensor release_dead_runs) marks it failed and frees "
                f"the slot within a minute; without the daemon run `{RELEASE_COMMAND}` (same "
                "DAGSTER_HOME) and this run goes on by itself."
            )
    if not lines:
        return None
    return f"Waiting for pool {pool}, held by " + " ".join(lines) + " Ctrl-C stops waiting."


def describe(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (not in this instance)"
    process = _process_of(run)
    where = f", process {process[1]} on {process[0]}" if process else ""
    return f"run {run_id} of {run.job_name} ({run.status.value}{where})"


def wait_for_pool(
    instance: dg.DagsterInstance,
    pool: str,
    say: Callable[[str], None],
    poll_s: float = 2.0,
    remind_s: float = 30.0,
) -> None:
    """Return once no run holds the pool, saying which runs it waits for (Ctrl-C stops it)."""
    said_at = -remind_s
    while busy := holders(instance, pool):
        if time.monotonic() - said_at >= remind_s:
            names = "; ".join(describe(instance, run_id) for run_id in sorted(busy))
            say(f"Waiting for pool {pool}, held by {names}. Ctrl-C stops waiting.")
            said_at = time.monotonic()
        time.sleep(poll_s)
        release_dead_runs(instance)
