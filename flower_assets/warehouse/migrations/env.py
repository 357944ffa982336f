"""Alembic environment of the warehouse migrations.

`flower_assets.warehouse.migrate` runs them on a connection it has locked (passed as the
config attribute "connection"). Run from the alembic command line (`uv run alembic -c
flower_assets/warehouse/migrations/alembic.ini …`, for `revision` and `history`), they use
FLOWER_DATABASE_URL under the same lock.
"""

from __future__ import annotations

from alembic import context

from flower_assets.warehouse import migrate, tables


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.metadata,
        # SQLite alters a table by copying it: batch operations do that for a migration.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=migrate.include_object(connection),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("The warehouse migrations run online only (no --sql).")
connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    from flower_assets import settings

    with migrate.locked(settings.database_url()) as connection:
        run(connection)
