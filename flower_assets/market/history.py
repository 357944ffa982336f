"""What each market date is built from, as one digest: how the market layer knows it is current.

A date's market rows depend on earlier dates: the previous auction date, the trailing windows
and the chained index with its base reach back through the category's whole history. So a
date's *history digest* covers, for each category traded on it, every record of that category
up to the date (up to the index's base date when that is later), and the base date itself.
It changes when anything the date's rows depend on changes: a first load of an earlier date, a
correction, a removal, whoever loaded it and in whatever order. A market date is current when
the digest it was built from (`market_builds`) equals its digest now; every other date is stale.

Records are digested per auction date and category when they are written
(`record_digests`, in the same transaction), so a date's history digest is computed from a
few thousand small rows, not from the records themselves.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from datetime import date

import polars as pl

DIGEST_SCHEMA = {
    "auction_date": pl.Date,
    "flower_gubn": pl.String,
    "records": pl.Int64,
    "digest": pl.String,
}
# What of a record the market layer reads (names follow from the ids, which never change).
DIGESTED = ["flower_id", "grade", "quantity", "avg_price", "total_price"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def record_digests(records: pl.DataFrame) -> pl.DataFrame:
    """Per auction date and category of `records`: their number and a digest of their content.

    `records` carry `auction_date`, `flower_gubn` and the `DIGESTED` columns; the digest does not
    depend on their order.
    """
    if not records.height:
        return pl.DataFrame(schema=DIGEST_SCHEMA)
    lines = records.select(
        "auction_date",
        "flower_gubn",
        pl.concat_str([pl.col(c).cast(pl.String) for c in DIGESTED], separator="\t").alias("line"),
    )
    grouped = lines.group_by("auction_date", "flower_gubn").agg(pl.col("line").sort())
    return pl.DataFrame(
        [(day, gubn, len(found), _sha256("\n".join(found))) for day, gubn, found in grouped.rows()],
        schema=DIGEST_SCHEMA,
        orient="row",
    ).sort("auction_date", "flower_gubn")


def history_digests(digests: pl.DataFrame, base_date: date | None) -> dict[date, str]:
    """Each auction date's history digest, for every date with records in `digests`.

    `digests`: `record_digests` of every date. `base_date`: the price index's base setting
    (None: each category's first auction date).
    """
    per_category: dict[str, tuple[list[date], list[str]]] = {}
    for gubn, days, found in (
        digests.sort("auction_date")
        .group_by("flower_gubn", maintain_order=True)
        .agg("auction_date", "digest")
        .rows()
    ):
        running, chained = "", []
        for day, digest in zip(days, found, strict=True):
            running = _sha256(f"{running}|{day}|{digest}")
            chained.append(running)
        per_category[gubn] = (days, chained)

    bases = {
        gubn: next((d for d in days if base_date is None or d >= base_date), None)
        for gubn, (days, _) in per_category.items()
    }
    traded_on: dict[date, list[str]] = {}
    for gubn, (days, _) in sorted(per_category.items()):
        for day in days:
            traded_on.setdefault(day, []).append(gubn)

    result = {}
    for day, categories in traded_on.items():
        parts = []
        for gubn in categories:
            days, chained = per_category[gubn]
            base = bases[gubn]
            # Before its base date an index value rests on the links up to the base.
            horizon = max(day, base) if base is not None else day
            parts.append(f"{gubn}:{base}:{chained[bisect_right(days, horizon) - 1]}")
        result[day] = _sha256("\n".join(parts))
    return result


def stale_dates(current: dict[date, str], built: dict[date, str]) -> list[date]:
    """Dates whose market rows are not built from their current history, first to last.

    `current`: the history digest of each date with records now; `built`: the digest each
    built date was built from. A date with records never built, a date built on another
    history, and a date built while it had records that it no longer has are all stale.
    """
    return sorted(
        day for day in current.keys() | built.keys() if current.get(day) != built.get(day)
    )
