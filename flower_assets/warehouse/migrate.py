"""The warehouse schema's version: Alembic migrations in `migrations/`, applied under a lock.

`upgrade` is `flower-assets db upgrade`: it takes the lock, adopts a warehouse created before
migrations existed (stamped as the baseline once its tables are found to be the baseline's),
and applies the missing migrations in one transaction. `Warehouse.open` calls `ensure_current`
on first use: a warehouse at head costs one query; an empty one is upgraded here, under the
lock, so concurrent first runs create the tables once; any other is refused, never changed
silently.

The lock: PostgreSQL `pg_advisory_xact_lock` on a fixed key, taken in the migration's own
transaction (PostgreSQL's DDL is transactional, so a waiting process finds the tables
committed and the version at head). SQLite: the migration's transaction starts with
`BEGIN IMMEDIATE`, which holds the file's write lock until it commits.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from flower_assets.warehouse import tables
from flower_assets.warehouse.connection import display_url, sqlite_path

SCRIPT_LOCATION = Path(__file__).with_name("migrations")
BASELINE = "0001"
# pg_advisory_xact_lock key of schema changes: crc32(b"flower_assets warehouse schema"). The
# one-key form never meets the partition locks' two-key form (database.py).
LOCK_KEY = 0x3892_FE71
UPGRADE_COMMAND = "flower-assets db upgrade"


class SchemaNotCurrent(Exception):
    """The warehouse is not at the schema this code expects; nothing was written."""


def location(url: str) -> str:
    path = sqlite_path(url) if url.lower().startswith("sqlite") else None
    return str(Path(path).resolve()) if path else display_url(url)


@cache
def _script(script_location: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(script_location))


def head(script_location: Path = SCRIPT_LOCATION) -> str:
    """The newest revision of the migrations (read once per process)."""
    return _script(str(script_location)).get_current_head()


def _revisions(script_location: Path) -> set[str]:
    return {script.revision for script in _script(str(script_location)).walk_revisions()}


def _config(script_location: str, connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def engine(url: str) -> sa.Engine:
    """A one-connection engine on the warehouse, connecting the way `Warehouse` does."""
    if url.lower().startswith("sqlite"):
        path = sqlite_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: sqlite3 would otherwise commit before each DDL statement.
        eng = sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(path, timeout=60, isolation_level=None),
            poolclass=sa.NullPool,
        )

        @sa.event.listens_for(eng, "begin")
        def _begin(connection: sa.Connection) -> None:
            # The write lock up front: one migration at a time, every other writer waits.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return eng
    import psycopg2

    libpq_url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    return sa.create_engine(
        "postgresql+psycopg2://",
        creator=lambda: psycopg2.connect(libpq_url, connect_timeout=10),
        poolclass=sa.NullPool,
    )


@contextmanager
def locked(url: str) -> Iterator[sa.Connection]:
    """A connection inside one transaction that holds the schema lock; committed on success."""
    eng = engine(url)
    try:
        with eng.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield connection
    finally:
        eng.dispose()


def table_names() -> set[str]:
    """Every table a revision of the warehouse has: the baseline's and today's."""
    return set(tables.metadata.tables) | set(baseline_metadata("postgresql").tables)


def warehouse_tables(connection: sa.Connection) -> set[str]:
    """The warehouse's tables (of any revision) that the database holds."""
    return set(sa.inspect(connection).get_table_names()) & table_names()


def differences(connection: sa.Connection, metadata: sa.MetaData) -> list:
    """How the database differs from the tables of `metadata` (Alembic's comparison)."""
    opts = {"compare_type": True, "include_object": include_object(connection)}
    return compare_metadata(MigrationContext.configure(connection, opts=opts), metadata)


def include_object(connection: sa.Connection):
    """Alembic's object filter for comparisons and autogenerate on this warehouse.

    Tables that are no warehouse table of any revision are someone else's: not compared. And
    SQLite keeps no name for a constraint declared without one, as the warehouse's SQLite files
    always declared their unique constraints: one that matches a declared constraint column for
    column is that constraint, not a missing one.
    """
    known = table_names()
    inspector = sa.inspect(connection) if connection.dialect.name == "sqlite" else None

    def include(obj, name, type_, reflected, compare_to) -> bool:
        if type_ == "table":
            return not reflected or name in known
        if type_ != "unique_constraint" or reflected or inspector is None:
            return True
        columns = [column.name for column in obj.columns]
        return not any(
            found["name"] is None and found["column_names"] == columns
            for found in inspector.get_unique_constraints(obj.table.name)
        )

    return include


def baseline_metadata(dialect: str, script_location: Path = SCRIPT_LOCATION) -> sa.MetaData:
    return _script(str(script_location)).get_revision(BASELINE).module.baseline_metadata(dialect)


def current(url: str) -> str | None:
    """The warehouse's revision; None if it has none (empty, or created before migrations)."""
    if url.lower().startswith("sqlite") and not Path(sqlite_path(url)).exists():
        return None  # asking creates no file
    eng = engine(url)
    try:
        with eng.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        eng.dispose()


def upgrade(
    url: str,
    revision: str = "head",
    *,
    only_if_empty: bool = False,
    script_location: Path = SCRIPT_LOCATION,
) -> tuple[str | None, str | None]:
    """Bring the warehouse to `revision` under the lock; (revision before, revision after).

    A warehouse without a revision but with tables is adopted when its tables are exactly the
    baseline's (stamped 0001), refused otherwise. `only_if_empty` (first use): the warehouse
    must be empty or already at head once the lock is held, else SchemaNotCurrent.
    """
    script = _script(str(script_location))
    with locked(url) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config = _config(str(script_location), connection)
        if before is not None and before not in _revisions(script_location):
            raise SchemaNotCurrent(unknown_message(location(url), before))
        if only_if_empty:
            if before == script.get_current_head():
                return before, before  # another process got there first
            if before is not None or warehouse_tables(connection):
                raise SchemaNotCurrent(behind_message(location(url), before, head(script_location)))
        elif before is None and warehouse_tables(connection):
            dialect = connection.dialect.name
            found = differences(connection, baseline_metadata(dialect, script_location))
            if found:
                raise SchemaNotCurrent(
                    f"The warehouse {location(url)} has tables but no schema revision, and they "
                    f"are not the baseline's ({BASELINE}): {found}. Nothing was changed."
                )
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after


def ensure_current(url: str, revision: str | None, empty: bool) -> None:
    """First use, given the warehouse's revision and whether it holds no table of ours.

    At head: nothing. Empty: upgraded to head under the lock. Otherwise SchemaNotCurrent.
    """
    newest = head()
    if revision == newest:
        return
    if revision is None and empty:
        upgrade(url, only_if_empty=True)
        return
    if revision is not None and revision not in _revisions(SCRIPT_LOCATION):
        raise SchemaNotCurrent(unknown_message(location(url), revision))
    raise SchemaNotCurrent(behind_message(location(url), revision, newest))


def behind_message(where: str, revision: str | None, newest: str) -> str:
    state = f"at schema revision {revision}" if revision else "without a schema revision"
    return (
        f"The warehouse {where} is {state}; this code needs {newest}. Nothing was written. "
        f"Run {UPGRADE_COMMAND} (with the same FLOWER_DATABASE_URL) to upgrade it."
    )


def unknown_message(where: str, revision: str) -> str:
    return (
        f"The warehouse {where} is at schema revision {revision}, which this code does not "
        f"know: newer code has upgraded it. Nothing was written. Run that code instead."
    )
