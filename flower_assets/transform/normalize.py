"""Pure polars functions: API items -> raw rows -> quarantine split -> item / variety / records.

Nothing here touches Dagster, the network or a database.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

import polars as pl

from flower_assets.source.categories import KOREAN_NAMES, Category, every_category
from flower_assets.source.envelope import ITEM_FIELDS, ApiItem
from flower_assets.warehouse.schemas import BIDDING, FLOWER_TYPES, FLOWERS, RAW, REJECTED

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
# The longest name the masters and records accept, in characters of the stored (canonical)
# name; longer rows are quarantined as `name_too_long`, on SQLite and PostgreSQL alike.
# PostgreSQL indexes (flower_gubn, name), (flower_type_id, name) and (auction_date, flower_id,
# grade) in btrees whose entries may not exceed 2704 bytes (1/3 of a page), and an NFC
# character takes at most 4 bytes in UTF-8 (3 for Hangul): 200 characters are at most 800
# bytes, far under the limit. Real item and variety names are under 40 characters.
MAX_NAME_CHARS = 200
# Grades are short codes (특1, 상2, 보통): 50 characters (at most 200 bytes) leave ample room.
MAX_GRADE_CHARS = 50
NAME_LIMITS: dict[str, int] = {
    "flower_type": MAX_NAME_CHARS,
    "flower_name": MAX_NAME_CHARS,
    "grade": MAX_GRADE_CHARS,
}
# Characters that are invisible and make two names look identical: zero-width space and
# non-joiner, word joiner, BOM (zero-width no-break space).
_INVISIBLE = "[\u200b\u200c\u2060\ufeff]"
# A zero-width joiner is removed too, except right after an emoji (possibly with a variation
# selector or skin tone), where it joins a ZWJ sequence such as 👩‍🌾 into one emoji.
_STRAY_JOINER = r"(^|[^\p{Extended_Pictographic}\x{FE0F}\x{1F3FB}-\x{1F3FF}])\x{200D}+"


def canonical_name(name: pl.Expr) -> pl.Expr:
    """A name as a person reads it, and as masters, records and duplicate keys use it.

    Unicode NFC (a Hangul syllable decomposed into jamo (NFD) is composed again), no invisible
    characters (zero-width space, non-joiner, joiner outside an emoji sequence, word joiner,
    BOM), no surrounding white space. Full-width letters are kept (NFC, not NFKC). The raw
    layer keeps names exactly as received.
    """
    # Invisible characters go first: jamo they kept apart then compose, so the result is NFC.
    return (
        name.str.replace_all(_INVISIBLE, "")
        .str.replace_all(_STRAY_JOINER, "$1")
        .str.normalize("NFC")
        .str.strip_chars()
    )


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


def _field(name: str) -> pl.Expr:
    return pl.col("item").struct.field(name)


def _stored(column: str) -> pl.Expr:
    """A name column in its canonical form, computed once per split (see `split_loadable`)."""
    return pl.col(f"_stored_{column}")


def _blank(column: str) -> pl.Expr:
    # A name of only spaces or invisible characters is empty once stored.
    return pl.col(column).is_null() | (_stored(column) == "")


@cache  # expressions are immutable: build them once
def _rules() -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(reason, condition that rejects a row, sentence) in order of precedence."""
    # Names are compared as the masters store them (`canonical_name`): '레드', '레드 ' and
    # '레드\u200b' are one variety, '장미' in NFC and in NFD one item.
    key = ["auction_date", "flower_gubn", *(_stored(column) for column in NAME_FIELDS)]
    rules: list[tuple[str, pl.Expr, pl.Expr]] = []
    for field in (NAME_FIELDS | AMOUNT_FIELDS).values():
        rules.append(
            (
                "missing_field",
                _field(field).is_null(),
                pl.lit(f"the API field {field} is missing (schema drift?)"),
            )
        )
    rules.append(
        (
            "unknown_category",
            ~_field("flowerGubn").is_in(KOREAN_NAMES),
            pl.format(
                "flowerGubn {} is not one of 절화/관엽/난/춘란",
                _field("flowerGubn").fill_null("null"),
            ),
        )
    )
    rules.append(
        (
            "category_mismatch",
            _field("flowerGubn") != pl.col("flower_gubn"),
            pl.format(
                "flowerGubn {} answered a request for {}",
                _field("flowerGubn"),
                pl.col("flower_gubn"),
            ),
        )
    )
    rules.append(
        (
            "wrong_sale_date",
            _field("saleDate").fill_null("") != pl.col("auction_date").dt.to_string("%Y-%m-%d"),
            pl.format(
                "saleDate {} is not the auction date asked for ({})",
                _field("saleDate").fill_null("null"),
                pl.col("auction_date"),
            ),
        )
    )
    for column, field in NAME_FIELDS.items():
        rules.append(("empty_name", _blank(column), pl.lit(f"{field} ({column}) is empty")))
    for column, field in NAME_FIELDS.items():
        limit = NAME_LIMITS[column]
        length = _stored(column).str.len_chars()
        rules.append(
            (
                "name_too_long",
                length > limit,
                pl.format(
                    f"{field} ({column}) is {{}} characters long, over the limit of {limit}"
                    " (kept verbatim in raw_item)",
                    length,
                ),
            )
        )
    for column, field in AMOUNT_FIELDS.items():
        rules.append(
            (
                "non_numeric_amount",
                pl.col(column).is_null(),
                pl.format(f"{field} is {{}}, not an integer", _field(field).fill_null("null")),
            )
        )
    for column, field in AMOUNT_FIELDS.items():
        rules.append(
            (
                "negative_amount",
                pl.col(column) < 0,
                pl.format(f"{field} is negative ({{}})", pl.col(column)),
            )
        )
    rules.append(
        (
            "non_positive_quantity",
            pl.col("quantity") <= 0,
            pl.format("totQty is {}; a traded row has a positive quantity", pl.col("quantity")),
        )
    )
    rules.append(
        (
            "min_above_max",
            pl.col("min_price") > pl.col("max_price"),
            pl.format("minAmt {} is above maxAmt {}", pl.col("min_price"), pl.col("max_price")),
        )
    )
    # Identical repeats of a row are harmless copies; the same key with different numbers is a
    # conflict we cannot settle, so every row of it is kept aside.
    rules.append(
        (
            "duplicate_key",
            pl.len().over(key) > pl.len().over([*key, "raw_item"]),
            pl.lit(
                "another row of this answer has the same date, category, item, variety and grade but different numbers"
            ),
        )
    )
    rules.append(
        (
            "duplicate_row",
            pl.int_range(pl.len()).over([*key, "raw_item"]) > 0,
            pl.lit("an identical copy of an earlier row in the same answer"),
        )
    )
    return rules


def split_loadable(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """QuarantineSplit raw rows into those that can be loaded and the rejected ones with a reason.

    Every raw row lands in exactly one of the two frames.
    """
    # Each rule is judged once, as a column; the first that rejects a row gives its reason, and
    # sentences are only written for rejected rows (few), not computed for every row.
    rules = _rules()
    hits = [f"_rule_{number}" for number in range(len(rules))]
    judged = item_fields(raw).with_columns(
        _clean(column).alias(f"_stored_{column}") for column in NAME_FIELDS
    )
    judged = judged.with_columns(
        rejects.fill_null(False).alias(hit)
        for hit, (_, rejects, _) in zip(hits, rules, strict=True)
    )
    judged = judged.with_columns(
        pl.coalesce(
            pl.when(pl.col(hit)).then(pl.lit(code))
            for hit, (code, _, _) in zip(hits, rules, strict=True)
        ).alias("reason")
    )
    loadable = judged.filter(pl.col("reason").is_null()).select(RAW.columns)
    sentence = pl.coalesce(
        pl.when(pl.col(hit)).then(text) for hit, (_, _, text) in zip(hits, rules, strict=True)
    ).str.replace_all("\x00", "\ufffd", literal=True)  # sentences quote fields
    rejected = (
        judged.filter(pl.col("reason").is_not_null())
        .with_columns(sentence.alias("reason_text"))
        .select(REJECTED.columns)
    )
    return loadable, rejected.cast(REJECTED.polars_schema)


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


def rows_per_category(frame: pl.DataFrame) -> dict[str, int]:
    return every_category(dict(frame.group_by("flower_gubn").len().iter_rows()))


__all__ = [
    "FLOWERS",
    "FLOWER_TYPES",
    "MAX_GRADE_CHARS",
    "MAX_NAME_CHARS",
    "auction_records",
    "canonical_name",
    "items_seen",
    "raw_rows",
    "rows_per_category",
    "split_loadable",
    "varieties_seen",
]
