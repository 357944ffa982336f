"""The production instance's event log: Dagster's PostgreSQL event log, with asset check
states checkpointed in its database (flower_assets/check_state_checkpoint.py, issue #19).

Named by `deploy/postgres/dagster.yaml` as `event_log_storage`; the run and schedule storages
stay dagster_postgres's own. Configured exactly as `PostgresEventLogStorage` (`postgres_url`,
or `postgres_db`, `should_autocreate_tables`).

The one thing PostgreSQL needs beyond SQLite: ids are taken from a sequence before commit, so a
transaction holding id 100 may commit after one holding id 101. A checkpoint read up to the
highest visible id (its mark) counts an id as final only once the transactions that held a row
lock on `event_logs` or `asset_check_executions` when the mark was read are over (`pg_locks`,
readable by any role; only this database's transactions matter). Until then the next requests
keep folding from the previous final mark, so a late commit is folded in, never skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from flower_assets.check_state_checkpoint import CheckpointedCheckState

# Transactions (other than this one) holding a row lock on the two tables whose ids a mark covers.
WRITERS_SQL = sa.text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks"
    " WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND relation IN (to_regclass('event_logs'), to_regclass('asset_check_executions'))"
    " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"
)
# Of those, the ones still running (a transaction holds its virtualxid lock until it ends).
STILL_RUNNING_SQL = sa.text(
    "SELECT count(*) FROM pg_locks WHERE virtualtransaction = ANY(:writers)"
)


class CheckpointedPostgresEventLogStorage(CheckpointedCheckState, PostgresEventLogStorage):
    """dagster_postgres's event log, with asset check states checkpointed in its database."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> CheckpointedPostgresEventLogStorage:
        # As PostgresEventLogStorage.from_config_value, which builds its own class by name.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def _mark_token(self, conn: sa.Connection) -> list[str]:
        return sorted(row[0] for row in conn.execute(WRITERS_SQL))

    def _mark_settled(self, token: object) -> bool:
        if not token:
            return True
        with self.index_connection() as conn:
            return conn.execute(STILL_RUNNING_SQL, {"writers": list(token)}).scalar_one() == 0
