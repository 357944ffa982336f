"""Quarantine: which raw rows can load, and for every other row the reason why not.

Every raw row lands in exactly one of the two frames `split_loadable` returns: for every
auction date, raw rows = loaded rows + rejected rows.
"""

from __future__ import annotations

from functools import cache

import polars as pl

from flower_assets.source.categories import KOREAN_NAMES
from flower_assets.transform.names import NAME_LIMITS, canonical_name
from flower_assets.transform.raw import AMOUNT_FIELDS, NAME_FIELDS, item_fields
from flower_assets.warehouse.schemas import RAW, REJECTED


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
    # Bundles that traded at an average or a total of 0 won: a price that cannot be right. Loaded,
    # it would be a -100 % change and drag its item's daily average towards 0. (A negative
    # amount is `negative_amount`, above; a minimum of 0 among dearer lots is possible and loads.)
    rules.append(
        (
            "price_not_positive",
            (pl.col("quantity") > 0) & ((pl.col("avg_price") <= 0) | (pl.col("total_price") <= 0)),
            pl.format(
                "avgAmt {} and totAmt {} for totQty {}: bundles or pots that traded have a "
                "positive average and total price",
                pl.col("avg_price"),
                pl.col("total_price"),
                pl.col("quantity"),
            ),
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
    """Split raw rows into those that can be loaded and the rejected ones with a reason.

    Every raw row lands in exactly one of the two frames.
    """
    # Each rule is judged once, as a column; the first that rejects a row gives its reason, and
    # sentences are only written for rejected rows (few), not computed for every row.
    rules = _rules()
    hits = [f"_rule_{number}" for number in range(len(rules))]
    judged = item_fields(raw).with_columns(
        canonical_name(pl.col(column)).alias(f"_stored_{column}") for column in NAME_FIELDS
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
