"""Raw typing: API items as raw rows, texts verbatim, amounts as integers or null."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from flower_assets.source.categories import Category, every_category
from flower_assets.source.envelope import ITEM_FIELDS, ApiItem
from flower_assets.warehouse.schemas import RAW

# raw column -> API field
NAME_FIELDS: dict[str, str] = {"flower_type": "pumName", "flower_name": "goodName", "grade": "lvNm"}
AMOUNT_FIELDS: dict[str, str] = {
    "quantity": "totQty",
    "max_price": "maxAmt",
    "min_price": "minAmt",
    "avg_price": "avgAmt",
    "total_price": "totAmt",
}
# An integer as the API writes it, optionally with thousands separators ("1,800").
_INTEGER = r"^\s*-?(\d+|\d{1,3}(,\d{3})+)\s*$"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    # PostgreSQL text cannot hold U+0000; raw_item keeps the exact JSON (\u0000 there).
    return text.replace("\x00", "\ufffd")


def raw_rows(
    items: list[ApiItem], auction_date: date, category: Category, fetched_at: datetime
) -> pl.DataFrame:
    """Items of one answer as raw rows. Texts stay verbatim; amounts that are not integers are null."""
    columns: dict[str, list] = {name: [] for name in (*NAME_FIELDS, *AMOUNT_FIELDS)}
    for item in items:
        for column, field in (NAME_FIELDS | AMOUNT_FIELDS).items():
            columns[column].append(_text(item.fields.get(field)))
    frame = pl.DataFrame(
        {
            **{
                column: pl.Series(column, values, dtype=pl.String)
                for column, values in columns.items()
            },
            "raw_item": pl.Series(
                [item.raw.decode("utf-8", "replace") for item in items], dtype=pl.String
            ),
        }
    )
    return frame.select(
        pl.lit(auction_date, pl.Date).alias("auction_date"),
        pl.lit(category.korean_name).alias("flower_gubn"),
        *NAME_FIELDS,
        *(_integer(pl.col(column)).alias(column) for column in AMOUNT_FIELDS),
        "raw_item",
        pl.lit(fetched_at, pl.Datetime("us", "UTC")).alias("fetched_at"),
    ).cast(RAW.polars_schema)


def _integer(text: pl.Expr) -> pl.Expr:
    return (
        pl.when(text.str.contains(_INTEGER))
        .then(text.str.replace_all(r"[,\s]", "").cast(pl.Int64, strict=False))
        .otherwise(None)
    )


# Every documented field as text; a missing field (or a JSON null) decodes to null.
ITEM_STRUCT = pl.Struct({name: pl.String for name in ITEM_FIELDS})
DECODE_SLICE_ROWS = 10_000


def item_fields(raw: pl.DataFrame) -> pl.DataFrame:
    """The raw rows with their items' documented fields decoded, as the text struct `item`.

    A frame already decoded is returned as it is: the raw step decodes each date once and hands
    the result to quarantine and to every check that reads the items.
    """
    if "item" in raw.columns:
        return raw
    # In slices: decoding 139k items at once peaks at ~450 MB, in slices of 10k at ~70 MB (and
    # is faster).
    decode = pl.col("raw_item").str.json_decode(ITEM_STRUCT).alias("item")
    parts = [part.with_columns(decode) for part in raw.iter_slices(DECODE_SLICE_ROWS)]
    return pl.concat(parts) if parts else raw.with_columns(decode)


def rows_per_category(frame: pl.DataFrame) -> dict[str, int]:
    return every_category(dict(frame.group_by("flower_gubn").len().iter_rows()))
