"""Runs as the sensors see them: which one under way touches which tables."""

from __future__ import annotations

from collections.abc import Collection

import dagster as dg

# Runs of these statuses may still write tables or spend calls of today's quota.
UNDER_WAY = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def touches(run: dg.DagsterRun, jobs: Collection[str], keys: Collection[dg.AssetKey]) -> bool:
    """Whether a run materializes one of `keys`: a run of one of `jobs`, or any run (a UI
    Materialize runs as `__ASSET_JOB`) whose asset selection includes one of them."""
    if run.job_name in jobs:
        return True
    if run.asset_selection is not None:
        return not run.asset_selection.isdisjoint(keys)
    # No selection recorded: every asset of the job, which for the implicit job is all of them.
    return run.job_name.startswith("__ASSET_JOB")


def first_under_way(
    instance: dg.DagsterInstance, jobs: Collection[str], keys: Collection[dg.AssetKey]
) -> dg.DagsterRun | None:
    """A run under way that materializes one of `keys`, if there is one."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=UNDER_WAY))
    return next((run for run in runs if touches(run, jobs, keys)), None)
