"""Shared fixtures: a throw-away PostgreSQL database per session, warehouses, fake aT answers."""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import dagster as dg
import polars as pl
import psycopg2
import pytest
import yaml

from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.auction.checks import flower_auction_checks
from flower_assets.defs.resources import (
    AtApiResource,
    PriceIndexSettings,
    QuarantineThreshold,
    WarehouseResource,
)
from flower_assets.source.categories import Category
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import BIDDING, FLOWER_TYPES, FLOWERS, RAW, REJECTED, TABLES

REPO = Path(__file__).resolve().parent.parent

# The PostgreSQL server the tests may create and drop databases on.
POSTGRES_ADMIN_URL = os.environ.get(
    "FLOWER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# CI sets this so that a missing PostgreSQL fails the run instead of skipping half the suite.
REQUIRE_POSTGRES = os.environ.get("FLOWER_TEST_REQUIRE_POSTGRES", "") == "1"
TEST_KEY = "0123456789abcdef0123456789abcdef"


def postgres_admin() -> psycopg2.extensions.connection:
    """An autocommit connection to the test server; without one the test fails in CI, else skips."""
    try:
        conn = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}")
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh warehouse database for this test session, dropped at the end."""
    yield from _throwaway_database("flower_test")


@pytest.fixture(scope="session")
def dagster_postgres_url() -> Iterator[str]:
    """A fresh database for Dagster's own storage (the production instance profile)."""
    yield from _throwaway_database("flower_dagster_test")


def _throwaway_database(prefix: str) -> Iterator[str]:
    admin = postgres_admin()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _drop_tables(url: str) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        for table in reversed(TABLES):
            cursor.execute(f"DROP TABLE IF EXISTS {table.name} CASCADE")
        cursor.execute("DROP TABLE IF EXISTS alembic_version")  # empty again: first use migrates
    conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty warehouse of each kind: a new SQLite file, or the session database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    _drop_tables(url)
    return url


def item(
    day: str = "2024-05-10",
    gubn: str = "절화",
    pum: str = "장미",
    good: str = "레드나오미",
    grade: str = "특1",
    max_amt: str = "12000",
    min_amt: str = "8000",
    avg_amt: str = "10000",
    tot_amt: str = "500000",
    tot_qty: str = "50",
    **overrides: object,
) -> dict[str, object]:
    """One API item in the real format: every value a string, the grade under `lvNm`."""
    row: dict[str, object] = {
        "saleDate": day,
        "flowerGubn": gubn,
        "pumName": pum,
        "goodName": good,
        "lvNm": grade,
        "maxAmt": max_amt,
        "minAmt": min_amt,
        "avgAmt": avg_amt,
        "totAmt": tot_amt,
        "totQty": tot_qty,
    }
    row.update(overrides)
    return row


class Market:
    """Scripted answers per (auction date, category) for the fake aT server."""

    def __init__(self) -> None:
        self.days: dict[tuple[date, Category], list[dict]] = {}

    def set(self, day: str, category: Category, rows: list[dict]) -> None:
        self.days[(date.fromisoformat(day), category)] = rows

    def rows_for(self, day: date, category: Category) -> list[dict]:
        return self.days.get((day, category), [])


@pytest.fixture
def instance(tmp_path):
    # The repo's dagster.yaml event log (one consolidated log, which the alert sensor reads).
    event_log = yaml.safe_load((REPO / "dagster.yaml").read_text())["event_log_storage"]
    event_log["config"] = {"base_dir": str(tmp_path / "history")}
    overrides = {"telemetry": {"enabled": False}, "event_log_storage": event_log}
    with dg.DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as instance:
        yield instance


def resources_for(
    warehouse_url: str, api_url: str | None = None, max_rejected_share: float = 0.01
) -> dict:
    """Resources pointing at a warehouse and at the fake aT server (sample mode without one)."""
    api = (
        AtApiResource(service_key=TEST_KEY, base_url=api_url, backoff_s=0.01, max_attempts=2)
        if api_url
        else AtApiResource()
    )
    return {
        "at_api": api,
        "warehouse": WarehouseResource(url=warehouse_url),
        "quarantine_threshold": QuarantineThreshold(max_rejected_share=max_rejected_share),
        "price_index": PriceIndexSettings(),
    }


def refetch_config(refetch: bool = True) -> dict:
    return {"ops": {"flower_auction": {"config": {"refetch": refetch}}}}


def fresh_definitions() -> ModuleType:
    """flower_assets.definitions built anew: the code location reads the environment when its
    modules are imported (the defs folder's, which load_from_defs_folder imports, included).
    The partitions stay the suite's, built as with a key (flower_assets_tests/__init__.py)."""
    for name in [n for n in sys.modules if n.startswith("flower_assets.defs.")]:
        if name != "flower_assets.defs.partitions":
            sys.modules.pop(name)
    sys.modules.pop("flower_assets.definitions", None)
    return importlib.import_module("flower_assets.definitions")


def latest_materializations(result, asset: str) -> list[dg.AssetMaterialization]:
    """Each date's latest materialization in the run, in date order: what the UI shows for it.

    An auction table records a date's content version in a materialization of its own after
    Dagster's (defs/assets.py `materialized`), so its run holds two per date.
    """
    latest: dict[str | None, dg.AssetMaterialization] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization is not None and materialization.asset_key == dg.AssetKey(asset):
            latest[materialization.partition] = materialization
    return list(latest.values())


def pipeline_job(resources: dict) -> dg.JobDefinition:
    """The four assets and their checks as one job, as the platform runs them."""
    return dg.Definitions(
        assets=flower_auction_assets, asset_checks=flower_auction_checks, resources=resources
    ).resolve_implicit_global_asset_job_def()


def materialize(
    keys,
    warehouse_url,
    instance,
    api_url=None,
    raise_on_error=True,
    range_run=False,
    max_rejected_share=0.01,
    refetch=False,
):
    """Materialize the four assets for each key (one run each), or for all keys in one run.

    `refetch` asks the API again for dates the raw response cache already holds.
    """
    resources = resources_for(warehouse_url, api_url, max_rejected_share)
    run_config = refetch_config(refetch)
    job = pipeline_job(resources)
    if range_run:
        tags = {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        }
        return [
            job.execute_in_process(
                instance=instance, tags=tags, raise_on_error=raise_on_error, run_config=run_config
            )
        ]
    return [
        job.execute_in_process(
            instance=instance,
            partition_key=key,
            raise_on_error=raise_on_error,
            run_config=run_config,
        )
        for key in keys
    ]


def tables(url: str) -> dict[str, pl.DataFrame]:
    with Warehouse.open(url) as wh:
        frames = {t.name: wh.read_table(t) for t in (RAW, FLOWER_TYPES, FLOWERS, BIDDING, REJECTED)}
    # fetched_at is when a row was fetched: the only column a re-fetch may change.
    frames[RAW.name] = frames[RAW.name].drop("fetched_at")
    return {name: frame.sort(frame.columns) for name, frame in frames.items()}
