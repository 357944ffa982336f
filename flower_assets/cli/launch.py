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

from collections.abc import Mapping

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
    return execute_run(job, run, instance, raise_on_error=False)
