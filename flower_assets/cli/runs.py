"""Runs started by the `flower-assets` CLI: who they are, and what a killed one leaves behind.

A CLI run executes in the CLI's own process, outside any run launcher, so nothing in Dagster
notices when that process is killed: the run stays "started" for ever and keeps its slot of the
`flower_api` pool, and every later run waits for that slot, silently. Each CLI run is therefore
tagged with its host and process id; before starting, the CLI marks runs of this host whose
process is gone as failed and frees their slots, and waits for a live holder itself, saying for
which run it waits (and Ctrl-C ends that wait like any other).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import dagster as dg

HOST_TAG = "flower/cli_host"
PID_TAG = "flower/cli_pid"
# Statuses of a run that may still hold a pool slot.
_ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def process_tags() -> dict[str, str]:
    """Tags that let a later CLI run tell whether this process is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's CLI runs whose process is gone as failed and free their pool slots."""
    released = []
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=_ACTIVE, tags={HOST_TAG: socket.gethostname()})
    )
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and (pid == os.getpid() or _alive(pid)):
            continue
        instance.report_run_failed(
            run,
            f"The flower-assets process {pid} that ran this run is gone (killed or crashed); "
            "marked failed by a later flower-assets run, which freed its pool slots.",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def holders(instance: dg.DagsterInstance, pool: str) -> set[str]:
    """Run ids holding the pool's slots when all of its slots are taken, else none."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    if info.limit is None or len(info.claimed_slots) < info.limit:
        return set()
    return set(info.active_run_ids)


def describe(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (not in this instance)"
    where = f", process {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}" if PID_TAG in run.tags else ""
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
