"""Normalizing: loadable raw rows as items, varieties and auction records (the masters' ids).

Names and grades take their canonical form (`names.canonical_name`); raw keeps them verbatim.
"""

from __future__ import annotations

import polars as pl

from flower_assets.transform.names import canonical_name
from flower_assets.warehouse.schemas import BIDDING


def _clean(column: str) -> pl.Expr:
    # Names are kept verbatim in the raw layer; masters and records use their canonical form.
    return canonical_name(pl.col(column))


def items_seen(loadable: pl.DataFrame) -> pl.DataFrame:
    """Distinct items (category, item name) with the dates they were seen on."""
    return (
        loadable.group_by("flower_gubn", _clean("flower_type").alias("name"))
        .agg(
            pl.col("auction_date").min().alias("first_seen_date"),
            pl.col("auction_date").max().alias("last_seen_date"),
        )
        .sort("flower_gubn", "name")
    )


def _with_item_ids(loadable: pl.DataFrame, flower_types: pl.DataFrame) -> pl.DataFrame:
    return loadable.with_columns(_clean("flower_type").alias("item_name")).join(
        flower_types.select(
            pl.col("id").alias("flower_type_id"), "flower_gubn", pl.col("name").alias("item_name")
        ),
        on=["flower_gubn", "item_name"],
        how="left",
        validate="m:1",
    )


def varieties_seen(loadable: pl.DataFrame, flower_types: pl.DataFrame) -> pl.DataFrame:
    """Distinct varieties (item id, variety name) with the dates they were seen on."""
    joined = _with_item_ids(loadable, flower_types)
    _require_all_matched(joined, "flower_type_id", "item", "flower_types")
    return (
        joined.group_by("flower_type_id", _clean("flower_name").alias("name"))
        .agg(
            pl.col("auction_date").min().alias("first_seen_date"),
            pl.col("auction_date").max().alias("last_seen_date"),
        )
        .sort("flower_type_id", "name")
    )


def auction_records(
    loadable: pl.DataFrame, flower_types: pl.DataFrame, flowers: pl.DataFrame
) -> pl.DataFrame:
    """Loadable raw rows as bidding_flowers rows, keyed by variety id."""
    joined = _with_item_ids(loadable, flower_types).with_columns(
        _clean("flower_name").alias("variety_name")
    )
    joined = joined.join(
        flowers.select(
            pl.col("id").alias("flower_id"), "flower_type_id", pl.col("name").alias("variety_name")
        ),
        on=["flower_type_id", "variety_name"],
        how="left",
        validate="m:1",
    )
    _require_all_matched(joined, "flower_id", "variety", "flowers")
    return joined.select(BIDDING.columns).with_columns(_clean("grade")).cast(BIDDING.polars_schema)


def _require_all_matched(joined: pl.DataFrame, id_column: str, what: str, table: str) -> None:
    missing = joined.filter(pl.col(id_column).is_null())
    if missing.height:
        first = missing.row(0, named=True)
        raise LookupError(
            f"{missing.height} rows of {first['auction_date']} ({first['flower_gubn']}) name an {what}"
            f" that is not in {table} yet, e.g. {first['flower_type']!r}/{first['flower_name']!r};"
            f" materialize {table} for this auction date first"
        )
