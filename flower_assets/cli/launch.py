"""Runs of the code location, executed in the `flower-assets` command's own process.

`execute_in_process` records a run without the code location it came from: the Dagster UI
then leaves it off the Overview timeline, which draws only runs with a `repositoryOrigin` (a
`.dagster/repository` tag set by hand lists it on its job's page, not on the timeline).
Launching through the location would need a code server and a run launcher that runs each run
in another process (or a daemon, with dagster.yaml's queued coordinator).

Here a run is created as a launch from the location creates it, with the location's origin
(`flower_assets`, as workspace.yaml and pyproject.toml name it: `__repository__@flower_assets`),
and then executed synchronously in this process, as `dagster job execute` does: the command
waits for it, Ctrl-C reaches it, nothing else needs to run, and its run tags (the CLI's host and
process) stay true. The UI shows it like any launched run, and can re-execute it.

Dagster has no public API for either half (an origin for `create_run_for_job`, or executing
a run already created), so the few private names are imported in this module only; the
behaviour they give is pinned by flower_assets_tests/cli/test_run_origin.py, through the
webserver's GraphQL.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import RemoteRepositoryOrigin
from dagster._core.workspace.load import location_origin_from_module_name

# The code location as workspace.yaml declares it (`dagster dev`, `dagster-webserver -w`).
LOCATION_NAME = "flower_assets"
MODULE = "flower_assets.definitions"
ATTRIBUTE = "defs"  # the module's Definitions
REPOSITORY_NAME = "__repository__"  # Dagster's name for a Definitions object's repository

# Dagster's notices about choices made on purpose, raised while a run is created or executed:
# silenced there, and in the processes of `flower-assets ui`, each for its reason.
KNOWN_NOTICES = {
    # dagster.yaml gives every run the PoolWaitAdvice handler (python_logs), which Dagster 1.13
    # marks beta and announces whenever it builds a run's log handlers; the release is pinned.
    "Handling yaml-defined logging configuration": dg.BetaWarning,
    # flower_market_job observes market_inputs, an observable source (which takes no backfill
    # policy), before it builds the market tables (100 dates a run), so a backfill of the job
    # alone runs one date a run. The CLI and the market sensor launch it for ranges of dates
    # (`defs/market/plan.py`); the job's description tells the UI's users.
    "Asset job flower_market_job materializes assets with varying": UserWarning,
}


@contextmanager
def known_notices_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        for message, category in KNOWN_NOTICES.items():
            warnings.filterwarnings("ignore", message=re.escape(message), category=category)
        yield


def known_notices_env() -> str:
    """KNOWN_NOTICES as PYTHONWARNINGS entries, for Dagster's own processes."""
    return ",".join(f"ignore:{message}" for message in KNOWN_NOTICES)


def _repository() -> ReconstructableRepository:
    return ReconstructableRepository.for_module(MODULE, ATTRIBUTE)


def _repository_origin() -> RemoteRepositoryOrigin:
    """The origin Dagster gives the location's repository when it loads workspace.yaml."""
    location = location_origin_from_module_name(MODULE, None, None, LOCATION_NAME)
    return RemoteRepositoryOrigin(location, REPOSITORY_NAME)


def create_run(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: Mapping[str, str],
    run_config: Mapping[str, object],
) -> dg.DagsterRun:
    """A run of the location's job, not started yet.

    The location's executor is Dagster's in-process one (definitions.py): `execute` runs the
    steps one after another in this process.
    """
    job = _repository().get_reconstructable_job(job_name)
    with known_notices_silenced():
        return instance.create_run_for_job(
            job_def=job.get_definition(),
            run_config=run_config,
            tags=tags,
            remote_job_origin=_repository_origin().get_job_origin(job_name),
            job_code_origin=job.get_python_origin(),
        )


def execute(instance: dg.DagsterInstance, run: dg.DagsterRun):
    """Execute the run here, synchronously; its result (success, run_id, all_events)."""
    job = _repository().get_reconstructable_job(run.job_name)
    with known_notices_silenced():
        return execute_run(job, run, instance, raise_on_error=False)
