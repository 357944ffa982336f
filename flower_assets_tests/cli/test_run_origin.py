"""Every run `flower-assets materialize` starts shows where users look: on the Overview timeline
and under its job, as the webserver's GraphQL answers the UI's own queries.

The timeline draws only runs with a `repositoryOrigin` (the code location a run was launched
from); runs of `execute_in_process` have none. The CLI creates its runs with the code location's
origin (flower_assets/cli/launch.py, which imports Dagster's private modules: this pins them).
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from flower_assets.cli import launch, runs
from flower_assets_tests.webui import (
    BIN,
    LOCATION,
    REPO,
    REPOSITORY,
    clean_env,
    embedded_home,
    webserver,
)

# The Overview timeline's query (CompletedRunTimelineQuery, RunTimelineFragment), trimmed.
TIMELINE = """query($filter: RunsFilter!) { runsOrError(filter: $filter, limit: 100) {
  ... on Runs { results { id runId pipelineName status
    tags { key value } repositoryOrigin { repositoryName repositoryLocationName } } } } }"""

JOB_RUNS = """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
  ... on Pipeline { runs(limit: 100) { runId } } } }"""


@pytest.mark.slow
def test_every_cli_run_shows_on_the_timeline_and_under_its_job(tmp_path):
    home = embedded_home(tmp_path / "dagster_home")
    env = clean_env(
        DAGSTER_HOME=str(home), FLOWER_DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    )
    # Sample mode; two dates, then one of them again: two auction runs, market runs, reports.
    for first, last in (("2024-05-09", "2024-05-10"), ("2024-05-10", "2024-05-10")):
        done = subprocess.run(
            [BIN / "flower-assets", "materialize", "--from", first, "--to", last],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    with webserver(env, tmp_path / "webserver.log") as ui:
        shown = ui.query(TIMELINE, filter={"statuses": ["SUCCESS", "FAILURE", "CANCELED"]})
        found = shown["runsOrError"]["results"]
        jobs = sorted(run["pipelineName"] for run in found)
        assert (
            jobs
            == ["flower_auction_job"] * 2 + ["flower_market_job"] * 2 + ["flower_report_job"] * 2
        ), jobs
        for run in found:
            # Drawn on the timeline, in the row of its job of this code location.
            assert run["repositoryOrigin"] == {
                "repositoryName": REPOSITORY,
                "repositoryLocationName": LOCATION,
            }, run
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            # Still the CLI's run: its process (dead-run recovery), and no automatic retry.
            assert tags[runs.PID_TAG] and tags[runs.HOST_TAG], tags
            assert tags["dagster/max_retries"] == "0", tags

        # Listed on each job's Runs page.
        for job in ("flower_auction_job", "flower_market_job", "flower_report_job"):
            listed = ui.query(
                JOB_RUNS,
                selector={
                    "pipelineName": job,
                    "repositoryName": REPOSITORY,
                    "repositoryLocationName": LOCATION,
                },
            )["pipelineOrError"]["runs"]
            ours = {run["runId"] for run in found if run["pipelineName"] == job}
            assert ours <= {run["runId"] for run in listed}, job


def test_the_cli_names_the_code_location_as_workspace_yaml_does():
    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    assert (module["module_name"], module["location_name"]) == (launch.MODULE, launch.LOCATION_NAME)
    assert (launch.LOCATION_NAME, launch.REPOSITORY_NAME) == (LOCATION, REPOSITORY)
