"""What a re-fetch changed in an auction date's answer: rows added, removed and changed.

Pure polars. Rows are compared as the API sent them (category and exact item text, as the
content hash sees them), duplicates counted. A removed and an added row with the same record key
(category, item, variety, grade, canonical as in the masters) are one `changed` row with its old
and new values. Undoing a correction on the newer answer gives back the older one exactly.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from flower_assets.transform.names import canonical_name
from flower_assets.transform.raw import AMOUNT_FIELDS
from flower_assets.warehouse.schemas import CORRECTIONS, RAW

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
# Record key of a raw row, in the corrections table's words.
KEY_NAMES = {"flower_type": "item_name", "flower_name": "variety_name", "grade": "grade"}
_TEXT = ["flower_gubn", "raw_item"]


def _numbered(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Number equal rows 0, 1, … so that duplicates are matched one to one."""
    return frame.with_columns(pl.int_range(pl.len()).over(by).alias("_nth"))


def _side(raw: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return _numbered(
        raw.select(
            "flower_gubn",
            *(canonical_name(pl.col(col)).alias(name) for col, name in KEY_NAMES.items()),
            *(pl.col(col).alias(f"{prefix}{col}") for col in AMOUNT_FIELDS),
            pl.col("raw_item").alias(f"{prefix}raw_item"),
        ),
        ["flower_gubn", f"{prefix}raw_item"],
    )


def diff_answers(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """The rows that differ between two raw answers of one auction date.

    Columns: flower_gubn, item_name, variety_name, grade, change, old_/new_ amounts and
    old_/new_raw_item (null on the side where the row does not exist).
    """
    before, after = _side(old, "old_"), _side(new, "new_")
    removed = before.join(
        after,
        left_on=["flower_gubn", "old_raw_item", "_nth"],
        right_on=["flower_gubn", "new_raw_item", "_nth"],
        how="anti",
    )
    added = after.join(
        before,
        left_on=["flower_gubn", "new_raw_item", "_nth"],
        right_on=["flower_gubn", "old_raw_item", "_nth"],
        how="anti",
    )
    key = ["flower_gubn", *KEY_NAMES.values()]
    paired = _numbered(removed.drop("_nth"), key).join(
        _numbered(added.drop("_nth"), key),
        on=[*key, "_nth"],
        how="full",
        coalesce=True,
        nulls_equal=True,
    )
    change = (
        pl.when(pl.col("old_raw_item").is_null())
        .then(pl.lit(ADDED))
        .when(pl.col("new_raw_item").is_null())
        .then(pl.lit(REMOVED))
        .otherwise(pl.lit(CHANGED))
    )
    return paired.select(
        *key,
        change.alias("change"),
        *(f"{side}{col}" for col in AMOUNT_FIELDS for side in ("old_", "new_")),
        "old_raw_item",
        "new_raw_item",
    ).sort(key, nulls_last=True)


# What a first or an unchanged answer changed.
NO_CHANGES = diff_answers(RAW.empty(), RAW.empty())


def as_recorded(
    changes: pl.DataFrame,
    auction_date: date,
    old_hash: str,
    new_hash: str,
    run_id: str,
    corrected_at: datetime,
) -> pl.DataFrame:
    """The changes as auction_corrections rows (the database assigns their ids)."""
    return changes.with_columns(
        pl.lit(auction_date, pl.Date).alias("auction_date"),
        pl.lit(old_hash).alias("old_content_hash"),
        pl.lit(new_hash).alias("new_content_hash"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(corrected_at, pl.Datetime("us", "UTC")).alias("corrected_at"),
    ).select(c for c in CORRECTIONS.columns if c != "id")


def counts(changes: pl.DataFrame) -> dict[str, int]:
    """Rows added, removed and changed, for the materialization metadata."""
    found = dict(changes["change"].value_counts().rows())
    return {change: int(found.get(change, 0)) for change in (ADDED, REMOVED, CHANGED)}


def undo(current: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """The answer before `changes`: `flower_gubn, raw_item` rows of `current`, changes undone."""
    rows = _numbered(current.select(_TEXT), _TEXT)
    came = _numbered(
        changes.filter(pl.col("new_raw_item").is_not_null()).select(
            "flower_gubn", pl.col("new_raw_item").alias("raw_item")
        ),
        _TEXT,
    )
    went = changes.filter(pl.col("old_raw_item").is_not_null()).select(
        "flower_gubn", pl.col("old_raw_item").alias("raw_item")
    )
    return pl.concat([rows.join(came, on=[*_TEXT, "_nth"], how="anti").drop("_nth"), went])
