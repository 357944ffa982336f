"""The compose topology for real: deploy/compose.yaml's services started as local processes.

Each service's command, environment, mounts, health check and start order come from the compose
file, interpolated with a generated env file as `docker-compose` would (compose.py). The
machine's PostgreSQL stands in for the postgres service: its init script creates this test's
two databases and their owners, dropped at the end. Only what the compose network and the
image provide is rewritten: service hostnames and ports, container paths (under a temporary
root), the image's PATH. The fake aT server and the webhook receiver are loopback servers the
env file points at, as an operator's env file points at the real ones.

Through the webserver's GraphQL, as the UI launches it: a run of one auction date is queued,
dequeued by the daemon, launched in the code server and loads the date from the fake server;
the market sensor builds that date's market tables; the code server is restarted; a second date
loads and fails a check, which reaches the webhook; the first date is intact.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets.source.categories import Category
from flower_assets_tests.conftest import POSTGRES_ADMIN_URL, TEST_KEY, postgres_admin
from flower_assets_tests.deploy.compose import DEPLOY, LocalHost, environment, load, read_env_file
from flower_assets_tests.webui import Ui

pytestmark = pytest.mark.slow

FIRST, SECOND = date(2024, 5, 8), date(2024, 5, 9)
# Records of the second date whose min price is raised to their max, above the average:
# prices_ordered fails (it tolerates 0.5% of the records), a check that does not block the date.
INVERTED = 20
ACTIVE = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]


def source(day: date, category: Category) -> list[dict]:
    rows = day_items(day, category)
    if day != SECOND:
        return rows
    inverted = [n for n, r in enumerate(rows) if int(r["maxAmt"]) > int(r["avgAmt"])][:INVERTED]
    return [{**r, "minAmt": r["maxAmt"]} if n in inverted else r for n, r in enumerate(rows)]


class Webhook:
    """A Slack-compatible webhook on loopback: the texts it was sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.texts.append(json.loads(body)["text"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Topology:
    host: LocalHost
    ui: Ui
    logs: Path
    warehouse_url: str
    server: FakeAtServer
    webhook: Webhook

    def logs_text(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{LocalHost.log(name, self.logs)}" for name in self.host.services
        )


@pytest.fixture
def topology(tmp_path) -> Iterator[Topology]:
    admin = postgres_admin()
    suffix = uuid.uuid4().hex[:10]
    names = {
        "DAGSTER_DB": f"flower_topology_dagster_{suffix}",
        "DAGSTER_DB_USER": f"flower_topology_dagster_{suffix}",
        "FLOWER_DB": f"flower_topology_warehouse_{suffix}",
        "FLOWER_DB_USER": f"flower_topology_warehouse_{suffix}",
    }
    admin_url = urlsplit(POSTGRES_ADMIN_URL)
    logs = tmp_path / "logs"
    logs.mkdir()
    webhook = Webhook()
    with FakeAtServer(source) as server:
        # The operator's deploy/.env, as .env.example asks for it (trust auth ignores passwords).
        env_file = tmp_path / ".env"
        env_file.write_text(
            "\n".join(
                f"{key}={value}"
                for key, value in {
                    "POSTGRES_PASSWORD": "unused",
                    **names,
                    "DAGSTER_DB_PASSWORD": "topology",
                    "FLOWER_DB_PASSWORD": "topology",
                    "FLOWER_API_KEY": TEST_KEY,
                    "FLOWER_API_BASE_URL": server.url,
                    "FLOWER_ALERT_WEBHOOK_URL": webhook.url,
                    "FLOWER_START_DATE": "2024-05-01",
                    # The whole quota kept for the daily schedule: history_backfill stays idle,
                    # so the runs here are the test's own.
                    "FLOWER_API_DAILY_QUOTA": "1000",
                    "FLOWER_HISTORY_RESERVE_CALLS": "1000",
                }.items()
            )
            + "\n"
        )
        compose = load(read_env_file(env_file))
        host = LocalHost(
            compose,
            root=tmp_path / "root",
            database=(admin_url.hostname or "127.0.0.1", admin_url.port or 5432),
        )
        create_databases(host, admin_url.username or "postgres", logs)
        try:
            host.up(logs)
            host.wait_healthy("webserver", logs)
            env = host.env("code-server")
            yield Topology(
                host,
                Ui(f"http://127.0.0.1:{host.ports['webserver']}"),
                logs,
                env["FLOWER_DATABASE_URL"],
                server,
                webhook,
            )
        finally:
            host.stop_all()
            webhook.close()
            with admin.cursor() as cursor:
                for key in ("DAGSTER_DB", "FLOWER_DB"):
                    cursor.execute(f'DROP DATABASE IF EXISTS "{names[key]}" WITH (FORCE)')
                for key in ("DAGSTER_DB_USER", "FLOWER_DB_USER"):
                    cursor.execute(f'DROP ROLE IF EXISTS "{names[key]}"')
            admin.close()


def create_databases(host: LocalHost, superuser: str, logs: Path) -> None:
    """The postgres service's init script, run against the machine's PostgreSQL."""
    postgres = host.services["postgres"]
    (script,) = [
        DEPLOY / volume.split(":")[0]
        for volume in postgres["volumes"]
        if volume.split(":")[1].startswith("/docker-entrypoint-initdb.d/")
    ]
    database_host, database_port = host.database
    done = subprocess.run(
        ["sh", str(script)],
        env={
            **environment(postgres),
            "PATH": "/usr/bin:/bin",
            "POSTGRES_USER": superuser,
            "PGHOST": database_host,
            "PGPORT": str(database_port),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def wait_until(what: str, condition: Callable[[], object], topology: Topology, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout_s}s\n{topology.logs_text()}")


def count(url: str, sql: str, day: date) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(sql, (day,))
        (found,) = cursor.fetchone()
    conn.close()
    return found


def records(topology: Topology, day: date) -> int:
    sql = "SELECT count(*) FROM bidding_flowers WHERE auction_date = %s"
    return count(topology.warehouse_url, sql, day)


def market_rows(topology: Topology, day: date) -> int:
    sql = "SELECT count(*) FROM daily_item_prices WHERE auction_date = %s"
    return count(topology.warehouse_url, sql, day)


def run_events(ui: Ui, run_id: str) -> list[str]:
    data = ui.query(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run {
             eventConnection { events { __typename ... on MessageEvent { message } } } } } }""",
        id=run_id,
    )
    return [
        f"{e['__typename']}: {e['message']}"
        for e in data["runOrError"]["eventConnection"]["events"]
    ]


def active_runs(ui: Ui) -> list[dict]:
    data = ui.query(
        """query($statuses: [RunStatus!]) { runsOrError(filter: {statuses: $statuses}) {
             ... on Runs { results { runId jobName status } } } }""",
        statuses=ACTIVE,
    )
    return data["runsOrError"]["results"]


def finished_runs(ui: Ui, job: str) -> list[dict]:
    data = ui.query(
        """query($job: String!) { runsOrError(filter: {pipelineName: $job}) {
             ... on Runs { results { runId status } } } }""",
        job=job,
    )
    return [r for r in data["runsOrError"]["results"] if r["status"] not in ACTIVE]


def location_loaded(ui: Ui) -> bool:
    data = ui.query(
        """{ workspaceOrError { ... on Workspace { locationEntries {
             name loadStatus locationOrLoadError { __typename } } } } }"""
    )
    (entry,) = data["workspaceOrError"]["locationEntries"]
    return (
        entry["name"] == "flower_assets"
        and entry["loadStatus"] == "LOADED"
        and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    )


def launch_date(topology: Topology, day: date) -> str:
    """One auction date of flower_auction_job, launched as the UI launches a partition."""
    return topology.ui.launch("flower_auction_job", {"dagster/partition": day.isoformat()})


def test_the_compose_topology_loads_builds_alerts_and_survives_a_code_server_restart(topology):
    ui, server = topology.ui, topology.server
    assert location_loaded(ui)

    # A date launched from the UI goes through the queue, the daemon and the code server.
    first_run = launch_date(topology, FIRST)
    assert ui.wait_for_run(first_run) == "SUCCESS", topology.logs_text()
    # Queued by the webserver, launched by the daemon (RunStarting), started as a process by the
    # code server's gRPC API (DefaultRunLauncher): only the code server has the key and the
    # fake server's address, and the webserver and the daemon do not have the code.
    events = [e.split(":")[0] for e in run_events(ui, first_run)]
    assert events.index("RunEnqueuedEvent") < events.index("RunStartingEvent")
    assert events.index("RunStartingEvent") < events.index("RunStartEvent")
    assert any(
        e.startswith("EngineEvent: Started process for run") for e in run_events(ui, first_run)
    )
    for service in ("webserver", "daemon"):
        assert not any(
            k.startswith("FLOWER_") for k in environment(topology.host.services[service])
        )
    asked = [r for r in server.requests if r.get("baseDate") == FIRST.isoformat()]
    # Four categories, each asked once, with the service key only the code server was given.
    assert len(asked) == len(Category) and all(r["serviceKey"] == TEST_KEY for r in asked)
    loaded = records(topology, FIRST)
    assert loaded == sum(len(source(FIRST, c)) for c in Category)

    # The market sensor builds that date's market tables, then nothing is under way.
    wait_until(
        "the market tables of the first date built",
        lambda: market_rows(topology, FIRST),
        topology,
        timeout_s=150,
    )
    wait_until(
        "a market run and its report finished, nothing under way",
        lambda: (
            finished_runs(ui, "flower_market_job")
            and finished_runs(ui, "flower_report_job")
            and not active_runs(ui)
        ),
        topology,
        timeout_s=150,
    )
    assert {r["status"] for r in finished_runs(ui, "flower_market_job")} == {"SUCCESS"}

    # The code server restarts between two runs.
    topology.host.stop("code-server")
    topology.host.start("code-server", topology.logs)
    topology.host.wait_healthy("code-server", topology.logs)
    wait_until("the UI has the location again", lambda: location_loaded(ui), topology, 120)

    second_run = launch_date(topology, SECOND)
    assert ui.wait_for_run(second_run) == "SUCCESS", topology.logs_text()
    assert records(topology, SECOND) == sum(len(source(SECOND, c)) for c in Category)
    # Nothing of the first run was lost: its records, its status, its materialization.
    assert records(topology, FIRST) == loaded and market_rows(topology, FIRST) > 0
    status = ui.query(
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=first_run
    )
    assert status["runOrError"]["status"] == "SUCCESS"
    assert ui.materialization_metadata("bidding_flowers", FIRST.isoformat())["__run_id"] == (
        first_run
    )

    # The second date's failed check reaches the webhook (the alert sensor, in the daemon).
    alert = wait_until(
        "the failed check's alert at the webhook",
        lambda: next(
            (t for t in topology.webhook.texts if "check prices_ordered failed" in t), None
        ),
        topology,
        timeout_s=120,
    )
    assert SECOND.isoformat() in alert and second_run in alert
    assert all(TEST_KEY not in text for text in topology.webhook.texts)
