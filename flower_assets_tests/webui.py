"""The Dagster UI's view of an instance: a real dagster-webserver and the GraphQL it answers.

Tests assert what users see through the same queries the UI's pages send.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "flower_assets"
REPOSITORY = "__repository__"


def embedded_home(home: Path, *, queued: bool = False) -> Path:
    """A DAGSTER_HOME with the repo's embedded instance config, its paths made absolute.

    Without `queued`, runs launched from the UI start at once (no daemon needed).
    """
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    for section in config.values():
        settings = (section.get("config") if isinstance(section, dict) else None) or {}
        if isinstance(settings.get("base_dir"), str):  # `{env: DAGSTER_HOME}` is the home already
            settings["base_dir"] = str(home / settings["base_dir"])
    if not queued:
        config["run_coordinator"]["class"] = "DefaultRunCoordinator"
        config["concurrency"].pop("runs")
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    env["DAGSTER_DISABLE_TELEMETRY"] = "yes"
    # With a key, a daemon's history_backfill sensor loads missing history: the whole quota
    # stays with the test's own runs unless the test sets a reserve of its own.
    env["FLOWER_HISTORY_RESERVE_CALLS"] = str(10**9)
    env.update(extra)
    return env


class Ui:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, text: str, **variables: object) -> dict:
        body = json.dumps({"query": text, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def materialization_metadata(self, asset: str, partition: str) -> dict[str, object]:
        """The latest materialization of one date, as its Partitions page shows it."""
        data = self.query(
            """query($key: AssetKeyInput!, $partition: String!) {
              assetNodeOrError(assetKey: $key) { ... on AssetNode {
                assetMaterializations(partitions: [$partition], limit: 1) {
                  partition runId metadataEntries { label __typename
                    ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text }
                    ... on BoolMetadataEntry { boolValue } ... on JsonMetadataEntry { jsonString }
                    ... on MarkdownMetadataEntry { mdStr } ... on FloatMetadataEntry { floatValue }
                    ... on UrlMetadataEntry { url }
                  } } } } }""",
            key={"path": [asset]},
            partition=partition,
        )
        (event,) = data["assetNodeOrError"]["assetMaterializations"]
        values: dict[str, object] = {"__run_id": event["runId"]}
        for entry in event["metadataEntries"]:
            value = next(
                (entry[k] for k in entry if k not in ("label", "__typename")), entry["__typename"]
            )
            values[entry["label"]] = json.loads(value) if "jsonString" in entry else value
        return values

    def checks(self, asset: str) -> dict[str, dict]:
        """Each check of the asset: name, blocking, canExecuteIndividually, jobNames, statuses."""
        data = self.query(
            """query($key: AssetKeyInput!) {
              assetNodeOrError(assetKey: $key) { ... on AssetNode {
                assetChecksOrError { ... on AssetChecks { checks {
                  name blocking canExecuteIndividually jobNames description
                  partitionStatuses { ... on AssetCheckTimePartitionStatuses {
                    ranges { startKey endKey status } } } } } } } } }""",
            key={"path": [asset]},
        )
        return {c["name"]: c for c in data["assetNodeOrError"]["assetChecksOrError"]["checks"]}

    def launch(
        self,
        job: str,
        tags: dict[str, str],
        checks: list[tuple[str, str]] | None = None,
        assets: list[str] | None = None,
    ) -> str:
        """A run launched as the UI launches it (Materialize, Execute, Launchpad): its id.

        Without `checks` and `assets` the job runs whole, as the Launchpad runs an op job.
        """
        selector: dict[str, object] = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "pipelineName": job,
        }
        if assets is not None:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
        if checks is not None:
            selector["assetCheckSelection"] = [
                {"assetKey": {"path": [a]}, "name": n} for a, n in checks
            ]
        data = self.query(
            """mutation($params: ExecutionParams!) {
              launchPipelineExecution(executionParams: $params) {
                __typename ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
            params={
                "mode": "default",
                "runConfigData": "{}",
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
                "selector": selector,
            },
        )
        launched = data["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def stale_status(self, asset: str, partition: str) -> str:
        """The date's staleness as the asset's pages show it: FRESH, STALE or MISSING."""
        return self.query(
            """query($key: AssetKeyInput!, $p: String!) { assetNodeOrError(assetKey: $key) {
                ... on AssetNode { staleStatus(partition: $p) } } }""",
            key={"path": [asset]},
            p=partition,
        )["assetNodeOrError"]["staleStatus"]

    def wait_for_run(self, run_id: str, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.query(
                "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id
            )["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} did not finish in {timeout_s}s")


def statuses_by_date(check: dict) -> dict[str, str]:
    """Partition key -> the check's status on the UI's Partitions view (daily keys)."""
    from datetime import date, timedelta

    found: dict[str, str] = {}
    for r in check["partitionStatuses"]["ranges"]:
        day, last = date.fromisoformat(r["startKey"]), date.fromisoformat(r["endKey"])
        while day <= last:
            found[day.isoformat()] = r["status"]
            day += timedelta(days=1)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    """Return once the webserver at `url` answers; fail with its log if it stops or is slow."""
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2)
            return
        except OSError as exc:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"webserver did not start: {log.read_text()[-3000:]}") from exc
            time.sleep(0.5)


@contextmanager
def webserver(env: dict[str, str], log: Path) -> Iterator[Ui]:
    port = free_port()
    process = subprocess.Popen(
        [BIN / "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log)
        yield Ui(url)
    finally:
        process.terminate()
        process.wait(timeout=30)
