"""The API key's daily quota, counted in the warehouse (`api_call_counts`) per key and KST day.

A call reserves its unit before it is made: one atomic conditional upsert in its own
transaction, so concurrent runs and processes together never count more than the quota.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Any

import sqlalchemy as sa

from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import API_CALL_COUNTS
from flower_assets.warehouse.tables import core

_COUNTS = core(API_CALL_COUNTS)
_KEY = sa.bindparam("key_fingerprint", type_=sa.Text)
_DAY = sa.bindparam("kst_date", type_=_COUNTS.c.kst_date.type)
_QUOTA = sa.bindparam("quota", type_=sa.BigInteger)
_CALLS_ON = sa.select(_COUNTS.c.calls).where(
    _COUNTS.c.key_fingerprint == _KEY, _COUNTS.c.kst_date == _DAY
)


@cache
def _reserve(insert: Any) -> sa.Insert:
    """One row changed (a first count, or one more below the quota) = granted; none = refused.

    The WHERE on the SELECT refuses a quota of 0 (and keeps SQLite's ON CONFLICT unambiguous).
    """
    first = sa.select(_KEY, _DAY, sa.literal(1, sa.BigInteger)).where(_QUOTA > 0)
    return (
        insert(_COUNTS)
        .from_select(["key_fingerprint", "kst_date", "calls"], first)
        .on_conflict_do_update(
            index_elements=["key_fingerprint", "kst_date"],
            set_={"calls": _COUNTS.c.calls + 1},
            where=_COUNTS.c.calls < _QUOTA,
        )
    )


class ApiQuota:
    """The daily quota of API calls, counted in one warehouse."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def reserve(self, key_fingerprint: str, kst_date: date, daily_quota: int) -> bool:
        """Count one call for the key and KST day if the count is below the quota.

        False: refused, nothing counted.
        """
        statement = _reserve(self.warehouse.db.dialect_insert)
        with self.warehouse.transaction() as tx:
            changed = tx.execute(
                statement, key_fingerprint=key_fingerprint, kst_date=kst_date, quota=daily_quota
            )
        return changed == 1

    def calls_on(self, key_fingerprint: str, kst_date: date) -> int:
        """The calls counted for the key on the KST day."""
        rows = self.warehouse.db.fetch(
            _CALLS_ON, key_fingerprint=key_fingerprint, kst_date=kst_date
        )
        return int(rows[0][0]) if rows else 0
