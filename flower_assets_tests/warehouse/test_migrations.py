"""Warehouse migrations on SQLite and PostgreSQL: the database, the SQLAlchemy tables and the
pandera models agree; a warehouse of the code before migrations is adopted with every row; a
new migration applies to a filled warehouse; concurrent first runs create the tables once."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flower_assets.warehouse import migrate, tables
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import FLOWER_TYPES, TABLES
from flower_assets_tests.conftest import REPO, _throwaway_database

# The code before migrations: its warehouses are created by CREATE TABLE IF NOT EXISTS.
BEFORE_MIGRATIONS = "69b3f89"

TYPES = {
    "postgresql": {
        pl.Int64: "BIGINT",
        pl.String: "TEXT",
        pl.Date: "DATE",
        pl.Datetime: "TIMESTAMP WITH TIME ZONE",
        pl.Float64: "DOUBLE PRECISION",
    },
    # SQLite keeps dates and timestamps as ISO text.
    "sqlite": {
        pl.Int64: "INTEGER",
        pl.String: "TEXT",
        pl.Date: "TEXT",
        pl.Datetime: "TEXT",
        pl.Float64: "DOUBLE",
    },
}


def expected_type(dtype: pl.DataType, dialect: str) -> str:
    return TYPES[dialect][dtype.base_type()]


def shape(connection: sa.Connection) -> dict[str, dict]:
    """Each warehouse table as the database holds it: what the models must agree with."""
    inspector = sa.inspect(connection)
    dialect = connection.dialect
    found = {}
    for name in sorted(set(inspector.get_table_names()) & set(tables.metadata.tables)):
        pk = inspector.get_pk_constraint(name)["constrained_columns"]
        found[name] = {
            # A primary key is never null (SQLite's INTEGER PRIMARY KEY says nullable).
            "columns": [
                (
                    c["name"],
                    c["type"].compile(dialect=dialect),
                    c["nullable"] and c["name"] not in pk,
                )
                for c in inspector.get_columns(name)
            ],
            "primary_key": pk,
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]))
                for i in inspector.get_indexes(name)
                if not i["unique"] and "duplicates_constraint" not in i
            ),
        }
    return found


def model_shape(dialect: str) -> dict[str, dict]:
    """Each table as its pandera model declares it, in `shape`'s terms."""
    expected = {}
    for table in TABLES:
        meta = table.meta
        pk = meta.get("primary_key")
        expected[table.name] = {
            "columns": [
                (name, expected_type(column.dtype.type, dialect), column.nullable and name != pk)
                for name, column in table.schema.columns.items()
            ],
            "primary_key": [pk] if pk else [],
            "unique": sorted(tuple(columns) for columns in meta.get("unique", [])),
            "foreign_keys": sorted(
                ((column,), parent, ("id",))
                for column, parent in meta.get("foreign_keys", {}).items()
            ),
            "indexes": sorted(
                (f"{table.name}_{'_'.join(columns)}_idx", tuple(columns))
                for columns in meta.get("indexes", [])
            ),
        }
    return dict(sorted(expected.items()))


def columns_of(url: str) -> dict[str, list[str]]:
    """The models' columns each warehouse table the database holds has, in model order."""
    eng = migrate.engine(url)
    try:
        with eng.connect() as connection:
            inspector = sa.inspect(connection)
            return {
                table.name: [
                    c
                    for c in table.columns
                    if c in {column["name"] for column in inspector.get_columns(table.name)}
                ]
                for table in TABLES
                if inspector.has_table(table.name)
            }
    finally:
        eng.dispose()


def rows(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every warehouse table the database holds, in a fixed order, over the
    models' columns it has (or over `columns`, those it had earlier: a column added since is
    left out)."""
    columns = {**columns_of(url), **(columns or {})}
    eng = migrate.engine(url)
    try:
        with eng.connect() as connection:
            return {
                name: connection.exec_driver_sql(
                    f"SELECT {', '.join(names)} FROM {name} ORDER BY {', '.join(names)}"
                ).all()
                for name, names in columns.items()
            }
    finally:
        eng.dispose()


# Added since with rows derived from the records (migration 0003): one per date and category.
DERIVED = "record_digests"


def kept(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> bool:
    """Every row of `before` is still there, the tables added since are empty, and the record
    digests, when added since, count every record."""
    derived_right = DERIVED in before or sum(row[2] for row in after.get(DERIVED, [])) == len(
        after.get("bidding_flowers", [])
    )
    return (
        {name: after[name] for name in before} == before
        and not any(after[name] for name in after.keys() - before.keys() - {DERIVED})
        and derived_right
    )


def with_connection(url: str, fn):
    eng = migrate.engine(url)
    try:
        with eng.connect() as connection:
            return fn(connection)
    finally:
        eng.dispose()


def dialect_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


# --- (a) the migrated database, the SQLAlchemy tables and the pandera models agree --------------


def test_the_sqlalchemy_tables_are_the_models_column_by_column():
    for dialect, compiled in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        for table in TABLES:
            declared = tables.TABLES_BY_NAME[table.name]
            pk = table.meta.get("primary_key")
            assert [
                (c.name, c.type.compile(dialect=compiled), c.nullable and not c.primary_key)
                for c in declared.columns
            ] == [
                (name, expected_type(column.dtype.type, dialect), column.nullable and name != pk)
                for name, column in table.schema.columns.items()
            ], table.name
            assert [c.name for c in declared.primary_key] == ([pk] if pk else [])
    assert set(tables.metadata.tables) == {table.name for table in TABLES}


def test_the_migrated_warehouse_is_the_tables_and_the_models(warehouse_url):
    before, after = migrate.upgrade(warehouse_url)
    assert (before, after) == (None, migrate.head())
    dialect = dialect_of(warehouse_url)

    def check(connection: sa.Connection) -> None:
        assert migrate.differences(connection, tables.metadata) == []
        assert shape(connection) == model_shape(dialect)
        inspector = sa.inspect(connection)
        if dialect == "postgresql":
            # Stable names: those PostgreSQL gives unnamed constraints, as the old DDL left them.
            for table in TABLES:
                for unique in table.meta.get("unique", []):
                    name = f"{table.name}_{'_'.join(unique)}_key"
                    assert name in {u["name"] for u in inspector.get_unique_constraints(table.name)}
                for column in table.meta.get("foreign_keys", {}):
                    name = f"{table.name}_{column}_fkey"
                    assert name in {f["name"] for f in inspector.get_foreign_keys(table.name)}
                if pk := table.meta.get("primary_key"):
                    assert inspector.get_pk_constraint(table.name)["name"] == f"{table.name}_pkey"
                    (column,) = [c for c in inspector.get_columns(table.name) if c["name"] == pk]
                    assert column["identity"]["always"] is False  # GENERATED BY DEFAULT
        else:
            for table in TABLES:
                if table.meta.get("primary_key"):  # the rowid itself: no index of its own
                    autoindexes = connection.exec_driver_sql(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                        f" AND tbl_name = '{table.name}' AND name LIKE 'sqlite_autoindex%'"
                    ).scalar()
                    assert autoindexes == len(table.meta.get("unique", []))

    with_connection(warehouse_url, check)


# --- first use and adoption ------------------------------------------------------------------


def test_first_use_of_an_empty_warehouse_migrates_it_and_later_uses_only_read_its_revision(
    warehouse_url,
):
    def someone_elses_table(connection: sa.Connection) -> None:
        connection.exec_driver_sql("DROP TABLE IF EXISTS someone_elses")
        connection.exec_driver_sql("CREATE TABLE someone_elses (x INTEGER)")
        connection.commit()

    with_connection(warehouse_url, someone_elses_table)  # empty: no table of the warehouse's
    with Warehouse.open(warehouse_url) as wh:
        assert wh.read_table(FLOWER_TYPES).height == 0
    assert migrate.current(warehouse_url) == migrate.head()
    assert with_connection(warehouse_url, lambda c: migrate.differences(c, tables.metadata)) == []
    with Warehouse.open(warehouse_url) as wh:
        assert wh.db.schema_revision() == migrate.head()
    with_connection(
        warehouse_url, lambda c: (c.exec_driver_sql("DROP TABLE someone_elses"), c.commit())
    )


def test_an_unversioned_warehouse_that_is_not_the_baseline_is_refused_and_left_alone(
    warehouse_url,
):
    # Created before 69b3f89: no index on bidding_flowers(flower_id, auction_date).
    migrate.upgrade(warehouse_url)

    def make_old(connection: sa.Connection) -> None:
        connection.exec_driver_sql("DROP INDEX bidding_flowers_flower_id_auction_date_idx")
        connection.exec_driver_sql("DROP TABLE alembic_version")

    with_connection(warehouse_url, lambda c: (make_old(c), c.commit()))
    with pytest.raises(migrate.SchemaNotCurrent, match="flower-assets db upgrade"):
        Warehouse.open(warehouse_url)
    with pytest.raises(migrate.SchemaNotCurrent, match="not the baseline's"):
        migrate.upgrade(warehouse_url)
    assert migrate.current(warehouse_url) is None


# --- (b) a warehouse created and filled by the code before migrations --------------------------

OLD_FILL = textwrap.dedent(
    """
    import sys
    from datetime import UTC, date, datetime

    import polars as pl

    from flower_assets.cli import main
    from flower_assets.schemas import CORRECTIONS
    from flower_assets.warehouse import Warehouse

    url = sys.argv[1]
    assert main(["materialize", "--from", "2024-05-09", "--to", "2024-05-10"]) == 0
    correction = {name: None for name in CORRECTIONS.columns if name != "id"} | {
        "auction_date": date(2024, 5, 10), "flower_gubn": "절화", "item_name": "장미",
        "variety_name": "레드", "grade": "특1", "change": "changed", "old_avg_price": 9000,
        "new_avg_price": 9500, "old_content_hash": "a", "new_content_hash": "b",
        "run_id": "old-code", "corrected_at": datetime(2024, 5, 11, tzinfo=UTC),
    }
    schema = {k: v for k, v in CORRECTIONS.polars_schema.items() if k != "id"}
    with Warehouse.open(url) as wh:
        wh.append(CORRECTIONS, pl.DataFrame([correction], schema=schema))
    """
)


def old_code(tmp_path: Path) -> Path:
    """The package as it was before migrations, unpacked from git."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE_MIGRATIONS, "flower_assets"],
        capture_output=True,
        check=True,
    ).stdout
    target = tmp_path / "before_migrations"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def run_python(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 300):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    done = subprocess.run(
        [sys.executable, *args],
        env=base | {"DAGSTER_DISABLE_TELEMETRY": "yes"} | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done


@pytest.mark.slow
def test_a_warehouse_filled_by_the_code_before_migrations_is_upgraded_with_every_row_kept(
    warehouse_url, tmp_path
):
    old = old_code(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    filled = run_python(
        ["-c", OLD_FILL, warehouse_url],
        {"PYTHONPATH": str(old), "FLOWER_DATABASE_URL": warehouse_url, "DAGSTER_HOME": str(home)},
        cwd=old,
    )
    assert filled.returncode == 0, filled.stdout[-2000:] + filled.stderr[-3000:]
    before, before_columns = rows(warehouse_url), columns_of(warehouse_url)
    # The tables of that commit, every one filled (the market tables came later).
    assert all(rows_ for name, rows_ in before.items() if name != "rejected_bidding_flowers"), {
        name: len(r) for name, r in before.items()
    }
    assert migrate.current(warehouse_url) is None

    # Today's code refuses to use it, before anything is written.
    with pytest.raises(migrate.SchemaNotCurrent, match="flower-assets db upgrade"):
        Warehouse.open(warehouse_url)
    env = {"FLOWER_DATABASE_URL": warehouse_url, "DAGSTER_HOME": str(home)}
    refused = run_python(
        ["-m", "flower_assets.cli", "materialize", "--from", "2024-05-11", "--to", "2024-05-11"],
        env,
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr[-3000:]
    assert "flower-assets db upgrade" in refused.stderr
    assert migrate.current(warehouse_url) is None and rows(warehouse_url) == before

    # The documented command adopts it as the baseline and upgrades it.
    upgraded = run_python(["-m", "flower_assets.cli", "db", "upgrade"], env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr[-3000:]
    assert f"upgraded from schema revision none to {migrate.head()}" in upgraded.stdout
    assert migrate.current(warehouse_url) == migrate.head()
    assert kept(before, rows(warehouse_url, before_columns))
    dialect = dialect_of(warehouse_url)
    assert with_connection(warehouse_url, lambda c: migrate.differences(c, tables.metadata)) == []
    assert with_connection(warehouse_url, shape) == model_shape(dialect)
    again = run_python(["-m", "flower_assets.cli", "db", "current"], env, cwd=tmp_path)
    assert f"schema revision {migrate.head()} (at head)" in again.stdout, again.stderr

    # Today's code goes on with it: ids keep counting from where the old code stopped.
    top = max(row[0] for row in before[FLOWER_TYPES.name])
    with Warehouse.open(warehouse_url) as wh:
        wh.upsert_items(
            pl.DataFrame(
                {
                    "flower_gubn": ["난"],
                    "name": ["새 품목"],
                    "first_seen_date": [date(2024, 5, 11)],
                    "last_seen_date": [date(2024, 5, 11)],
                }
            )
        )
        new = wh.read_table(FLOWER_TYPES).filter(pl.col("name") == "새 품목")
    assert new["id"].item() > top


# --- (c) a new migration that adds a column ----------------------------------------------------

ADD_COLUMN = textwrap.dedent(
    '''
    """bidding_flowers.price_spread: highest minus lowest price.

    Revision ID: 9001
    Revises: HEAD
    """

    import sqlalchemy as sa
    from alembic import op

    revision = "9001"
    down_revision = "HEAD"
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        op.add_column(
            "bidding_flowers",
            sa.Column("price_spread", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
        )
        op.execute("UPDATE bidding_flowers SET price_spread = max_price - min_price")


    def downgrade() -> None:
        with op.batch_alter_table("bidding_flowers") as batch:
            batch.drop_column("price_spread")
    '''
)


def test_a_new_migration_adding_a_column_applies_to_a_filled_warehouse(
    warehouse_url, instance, tmp_path
):
    from flower_assets_tests.conftest import materialize

    materialize(["2024-05-10"], warehouse_url, instance)  # sample mode: a day of the pipeline
    before = rows(warehouse_url)
    assert before["bidding_flowers"] and before["flowers"]
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head()  # the package's own latest revision
    (scripts / "versions" / "9001_price_spread.py").write_text(ADD_COLUMN.replace("HEAD", head))
    assert migrate.head(scripts) == "9001"

    # Behind the code that carries 9001: first use refuses, nothing changes.
    with pytest.raises(migrate.SchemaNotCurrent, match=rf"revision {head}; this code needs 9001"):
        migrate.upgrade(warehouse_url, only_if_empty=True, script_location=scripts)
    assert migrate.upgrade(warehouse_url, script_location=scripts) == (head, "9001")

    assert rows(warehouse_url) == before  # every column of the models keeps its values
    spread = with_connection(
        warehouse_url,
        lambda c: c.exec_driver_sql(
            "SELECT count(*), sum(CASE WHEN price_spread = max_price - min_price THEN 1 END)"
            " FROM bidding_flowers"
        ).one(),
    )
    assert spread == (len(before["bidding_flowers"]), len(before["bidding_flowers"]))
    # The package's own code does not know 9001: it refuses, it does not guess.
    with pytest.raises(migrate.SchemaNotCurrent, match="does not know"):
        Warehouse.open(warehouse_url)


# --- (d) concurrent first runs -----------------------------------------------------------------

# A step's first use of the warehouse, in a process of its own: WarehouseResource.open, then a
# write. All start together once every process has imported everything.
FIRST_RUN = textwrap.dedent(
    """
    import os, sys, time
    from datetime import date
    from flower_assets.defs.resources import WarehouseResource
    from flower_assets.source.quota import ApiQuota

    url, gate, number = sys.argv[1:]
    open(os.path.join(gate, f"ready_{number}"), "w").close()
    while not os.path.exists(os.path.join(gate, "go")):
        time.sleep(0.005)
    with WarehouseResource(url=url).open() as wh:
        assert ApiQuota(wh).reserve(f"key{number}", date(2024, 5, 10), 10)
    """
)
RUNS = 8


def first_runs(url: str, tmp_path: Path, pythonpath: str | None = None) -> list:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "first_run.py"
    script.write_text(FIRST_RUN)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    if pythonpath:
        base["PYTHONPATH"] = pythonpath
    children = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(gate), str(n)],
            env=base,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(RUNS)
    ]
    deadline = time.monotonic() + 120
    while len(list(gate.glob("ready_*"))) < RUNS:
        assert time.monotonic() < deadline and all(c.poll() is None for c in children)
        time.sleep(0.01)
    (gate / "go").touch()
    return [(child.wait(timeout=120), child.stdout.read()) for child in children]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_concurrent_first_runs_on_a_fresh_warehouse_all_succeed(kind, tmp_path):
    if kind == "postgres":
        fresh = _throwaway_database("flower_test_first_runs")
        url = next(fresh)
    else:
        url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    try:
        outcomes = first_runs(url, tmp_path)
        failures = [output[-1500:] for code, output in outcomes if code != 0]
        assert failures == [], f"{len(failures)} of {RUNS} first runs failed:\n" + failures[0]

        def check(connection: sa.Connection) -> None:
            assert shape(connection) == model_shape(connection.dialect.name)
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            assert versions == [(migrate.head(),)]
            calls = connection.exec_driver_sql("SELECT count(*) FROM api_call_counts").scalar()
            assert calls == RUNS

        with_connection(url, check)
    finally:
        if kind == "postgres":
            fresh.close()
