"""Secrets: the aT service key and the warehouse password never land anywhere a person reads.

The key and password are made up at run time, so a hit can only be a leak. After runs that
succeed and runs that fail in every way the API can fail, they are looked for in the Dagster
event log (messages, errors, metadata), the run storage (run config, tags, snapshots), every
file under the instance directory (compute logs and the storage databases, byte for byte),
every text column of every warehouse table, the Python log records and the process output.

Secrets are handed to the resources as `EnvVar`, as `default_resources()` does in production:
a literal value given to a resource is stored by Dagster in the job snapshot of every run.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import serialize_value

from flower_assets.sample.days import envelope
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.source.categories import Category
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import TABLES
from flower_assets_tests.source.test_faults_http import (
    DAY,
    closed_port,
    failure,
    new_key,
    raw_metadata,
    run,
    version_a,
    version_b,
)

REPO = Path(__file__).resolve().parents[1]


def with_password(url: str, password: str) -> str:
    """The same PostgreSQL URL with a password in it (ignored by a trust-authenticated server)."""
    return re.sub(r"^(postgres(?:ql)?(?:\+\w+)?://)([^:@/]+)@", rf"\g<1>\g<2>:{password}@", url)


def leaks(text: str | bytes, *needles: str) -> list[str]:
    haystack = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [needle for needle in needles if needle.encode() in haystack]


def scan_instance(instance: dg.DagsterInstance, *needles: str) -> dict[str, list[str]]:
    """Every place Dagster keeps: events, runs, snapshots, and each file under its directory."""
    found: dict[str, list[str]] = {}
    runs = instance.get_runs()
    assert runs, "no runs to scan"
    for run_ in runs:
        places = {
            f"run {run_.run_id} record (config, tags)": serialize_value(run_),
            f"run {run_.run_id} job snapshot": serialize_value(
                instance.get_job_snapshot(run_.job_snapshot_id)
            ),
            f"run {run_.run_id} plan snapshot": serialize_value(
                instance.get_execution_plan_snapshot(run_.execution_plan_snapshot_id)
            ),
        }
        for n, entry in enumerate(instance.all_logs(run_.run_id)):
            places[f"run {run_.run_id} event {n}"] = serialize_value(entry)
        for place, text in places.items():
            if hits := leaks(text, *needles):
                found[place] = hits
    files = [Path(root) / f for root, _, fs in os.walk(instance.root_directory) for f in fs]
    compute_logs = [f for f in files if f.suffix in (".out", ".err")]
    assert compute_logs, "no compute logs were captured: nothing to scan there"
    for path in files:
        if hits := leaks(path.read_bytes(), *needles):
            found[str(path)] = hits
    return found


def scan_warehouse(url: str, *needles: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with Warehouse.open(url) as wh:
        for table in TABLES:
            frame = wh.read_table(table)
            for column, dtype in frame.schema.items():
                if dtype == pl.String:
                    for value in frame[column].drop_nulls():
                        if hits := leaks(value, *needles):
                            found.setdefault(f"{table.name}.{column}", []).extend(hits)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):
            if hits := leaks(file.read_bytes(), *needles):
                found[str(file)] = hits
    return found


class Faults:
    """One fake server, switched from one failure to the next between runs."""

    def __init__(self, key_echo: str | None = None):
        self.mode = "ok"
        self.key_echo = key_echo

    def __call__(self, params: dict[str, str], _n: int) -> Reply | None:
        gubn = params.get("flowerGubn")
        if self.mode == "503" and gubn == Category.ORCHIDS.code:
            return Reply(503, b"Service Unavailable", "text/plain")
        if self.mode == "404" and gubn == Category.ORCHIDS.code:
            return Reply(404, b"Not Found", "text/plain")
        if self.mode == "rejected" and gubn == Category.CUT_FLOWERS.code:
            message = "서비스 키 오류입니다." + (f" ({self.key_echo})" if self.key_echo else "")
            return Reply(200, envelope("1", message, []))
        return None


def test_no_trace_of_the_key_or_the_password_after_failing_and_succeeding_runs(
    warehouse_url, tmp_path, monkeypatch, caplog, capfd
):
    key, password = new_key(), secrets.token_hex(12)
    url = with_password(warehouse_url, password) if "postgres" in warehouse_url else warehouse_url
    # As in production: the values come from the environment through EnvVar.
    monkeypatch.setenv("FLOWER_API_KEY", key)
    monkeypatch.setenv("FLOWER_DATABASE_URL", url)
    monkeypatch.setenv(
        "FLOWER_TEST_DEAD_DATABASE_URL",
        with_password(f"postgresql://flower@127.0.0.1:{closed_port()}/flower", password),
    )
    env_key, env_url = dg.EnvVar("FLOWER_API_KEY"), dg.EnvVar("FLOWER_DATABASE_URL")
    (tmp_path / "home").mkdir()
    caplog.set_level("DEBUG")
    faults = Faults()
    outcomes = {}
    with (
        dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        FakeAtServer(version_a().rows_for, fault=faults) as server,
    ):
        for mode in ("ok", "503", "404", "rejected"):
            faults.mode = mode
            outcomes[mode] = run(env_url, instance, server.url, key=env_key, attempts=2)
        outcomes["refused"] = run(
            env_url, instance, f"http://127.0.0.1:{closed_port()}/x", key=env_key, attempts=2
        )
        outcomes["dead-database"] = run(
            dg.EnvVar("FLOWER_TEST_DEAD_DATABASE_URL"), instance, server.url, key=env_key
        )
        server.rows_for = version_b().rows_for
        faults.mode = "ok"
        outcomes["ok-again"] = run(env_url, instance, server.url, key=env_key)

        assert [m for m, r in outcomes.items() if r.success] == ["ok", "ok-again"]
        # The scan looks where the failures were recorded: errors name the redacted request.
        errors = {m: failure(r)[1] for m, r in outcomes.items() if not r.success}
        assert "serviceKey=***" in errors["404"] and "HTTP 503" in errors["503"]
        assert DAY in errors["rejected"] and ":***@" in errors["dead-database"]
        assert scan_instance(instance, key, password) == {}
    assert scan_warehouse(url, key, password) == {}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request: GET" in logged  # httpx's own request lines were captured, redacted
    out, err = capfd.readouterr()
    assert leaks(logged + out + err, key, password) == []


def test_a_server_message_echoing_the_key_is_redacted_before_it_is_logged(tmp_path, monkeypatch):
    """Some gateways repeat the key they refused; the platform must not repeat it after them."""
    key = new_key()
    monkeypatch.setenv("FLOWER_API_KEY", key)
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    faults = Faults(key_echo=key)
    faults.mode = "rejected"
    (tmp_path / "home").mkdir()
    with (
        dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        FakeAtServer(version_a().rows_for, fault=faults) as server,
    ):
        result = run(url, instance, server.url, key=dg.EnvVar("FLOWER_API_KEY"))
        assert not result.success
        message = failure(result)[1]
        assert (
            "resultCd 1: wrong service key" in message and "서비스 키 오류입니다. (***)" in message
        )
        assert scan_instance(instance, key) == {}
    assert scan_warehouse(url, key) == {}


@pytest.mark.parametrize("form", ["query-parameter", "key-value-dsn"])
def test_a_password_given_as_a_parameter_is_hidden_too(form, request, tmp_path, monkeypatch):
    """libpq also takes `?password=…` in a URL; a pasted `key=value` DSN is refused without echo."""
    password = secrets.token_hex(12)
    if form == "query-parameter":
        base = request.getfixturevalue("postgres_url")
        url = f"{base}?password={password}"
    else:
        url = f"host=127.0.0.1 port=5432 dbname=flower user=flower password={password}"
    monkeypatch.setenv("FLOWER_DATABASE_URL", url)
    (tmp_path / "home").mkdir()
    with (
        dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        FakeAtServer(version_a().rows_for) as server,
    ):
        result = run(dg.EnvVar("FLOWER_DATABASE_URL"), instance, server.url)
        if form == "query-parameter":  # works, and says where the data went, masked
            assert result.success
            assert raw_metadata(result)["warehouse"].endswith("?password=***")
        else:  # refused, saying what is expected
            assert not result.success
            assert "password=***" in failure(result)[1]
            assert "expected sqlite:///path or postgresql://" in failure(result)[1]
        assert scan_instance(instance, password) == {}


@pytest.mark.slow
def test_the_dagster_cli_with_the_production_settings_leaves_no_trace_of_the_key(tmp_path):
    """`dagster asset materialize` configured only by environment variables, as in production."""
    key = new_key()
    home, warehouse = tmp_path / "dagster_home", tmp_path / "warehouse.sqlite"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    faults = Faults()
    outputs = []
    with FakeAtServer(version_a().rows_for, fault=faults) as server:
        env |= {
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "yes",
            "FLOWER_API_KEY": key,
            "FLOWER_API_BASE_URL": server.url,
            "FLOWER_DATABASE_URL": f"sqlite:///{warehouse}",
        }
        for mode, expected_rc in (("ok", 0), ("404", 1)):
            faults.mode = mode
            done = subprocess.run(
                [
                    *(Path(sys.executable).parent / "dagster", "asset", "materialize"),
                    *("-m", "flower_assets", "--select", "*", "--partition", DAY),
                ],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                timeout=300,
            )
            assert done.returncode == expected_rc, done.stderr[-3000:]
            outputs.append(done.stdout + done.stderr)
    assert b"serviceKey=***" in outputs[1] and b"HTTP 404" in outputs[1]
    assert leaks(b"".join(outputs), key) == []
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert len(instance.get_runs()) == 2
        assert scan_instance(instance, key) == {}
    assert scan_warehouse(f"sqlite:///{warehouse}", key) == {}


# --- the repository itself -------------------------------------------------------------------

HEX32 = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])")
SECRET_WORD = re.compile(r"(?i)key|secret|token|passw|pwd|credential|auth")
ASSIGNED = re.compile(
    r"(?i)\b[\w-]*(?:key|secret|token|passw(?:or)?d|pwd)[\w-]*\b[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9+/_\-]{20,}={0,2})"
)
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^/\s:@'\"]+:([^@\s/'\"]+)@")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
AWS_KEY = re.compile(r"\bAKIA[0-9A-Z]{16}\b")
# Passwords in URLs that only show where a password goes.
PLACEHOLDERS = {"pw", "pass", "password", "secret", "s3cret", "xxx", "changeme", "***", "…"}


def looks_made_up(value: str) -> bool:
    """Repeats of a short pattern (0123…cdef0123…, aaaa…, deadbeef×4): no issued key looks so."""
    n = len(value)
    periodic = any(value == (value[:p] * n)[:n] for p in range(1, n // 2 + 1))
    return periodic or len(set(value.lower())) <= 4


def credentials_in(text: str) -> list[str]:
    found = []
    for match in HEX32.finditer(text):
        around = text[max(0, match.start() - 60) : match.start()]
        if SECRET_WORD.search(around) and not looks_made_up(match.group()):
            found.append(f"32-hex key {match.group()[:6]}…")
    for match in ASSIGNED.finditer(text):
        value = match.group(1)
        if not looks_made_up(value) and not value.isupper() and any(c.isdigit() for c in value):
            found.append(f"assigned secret {match.group()[:40]!r}")
    for match in URL_PASSWORD.finditer(text):
        password = match.group(1)
        if password.lower() not in PLACEHOLDERS and not set("…*{$<") & set(password):
            found.append(f"password in URL {match.group()[:40]!r}")
    found += [f"private key {m.group()}" for m in PRIVATE_KEY.finditer(text)]
    found += [f"AWS key {m.group()[:8]}…" for m in AWS_KEY.finditer(text)]
    return found


def test_the_credential_scanner_finds_what_it_looks_for():
    real = new_key()
    assert credentials_in(f"serviceKey={real}") and credentials_in(f'FLOWER_API_KEY = "{real}"')
    assert credentials_in(f"postgresql://flower:{secrets.token_urlsafe(12)}@db:5432/w")
    assert credentials_in("-----BEGIN OPENSSH " + "PRIVATE KEY-----")  # split: this file is scanned
    assert not credentials_in('TEST_KEY = "0123456789abcdef0123456789abcdef"')
    assert not credentials_in("postgresql://user:pw@host:port/db and flower:…@db.internal")
    assert not credentials_in("key_fingerprint = sha256(service_key)[:12]; api_calls = 4")


def test_the_tracked_files_hold_no_credentials():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    found = {}
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = REPO / name
        if not path.is_file():
            continue  # listed but deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        if hits := credentials_in(data.decode("utf-8", "replace")):
            found[name] = hits
    assert found == {}
