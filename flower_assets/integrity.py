"""Pure integrity checks on polars frames: each returns an Outcome a person can act on.

The Dagster glue in `checks.py` turns outcomes into partitioned asset-check evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from flower_assets.categories import KOREAN_NAMES
from flower_assets.normalize import item_fields
from flower_assets.parsing import ITEM_FIELDS, KEY_FIELDS

SAMPLE_ROWS = 10
NAME_KEYS = ("pumName", "goodName", "lvNm")
# How much trailing history price_anomalies looks at, in auction days of the variety and grade.
ANOMALY_HISTORY_DAYS = 28
ANOMALY_MIN_HISTORY = 8
ANOMALY_Z = 5.0
# A price must also at least double or halve against its median to count as an anomaly.
ANOMALY_MIN_RATIO = 2.0
# A flat history has MAD 0; its spread is taken to be at least this share of the median.
ANOMALY_MAD_FLOOR = 0.015
# expected_auction_day looks back this many same weekdays.
WEEKDAY_LOOKBACK = 8
WEEKDAY_MIN_TRADED = 6


@dataclass
class Outcome:
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sample: pl.DataFrame | None = None


def _sample(frame: pl.DataFrame) -> pl.DataFrame | None:
    return frame.head(SAMPLE_ROWS) if frame.height else None


# A top-level field name in an item's JSON text.
_FIELD_NAME = r'"([^"\\]+)"\s*:'


def _field_counts(raw: pl.DataFrame) -> dict[str, int]:
    """How many items carry each top-level field name found in raw_item."""
    items = item_fields(raw)
    # The usual item: every documented field present and as many names as documented fields,
    # so exactly the documented fields. Only the others need their names extracted (slow).
    usual = pl.all_horizontal(
        pl.col("item").struct.field(name).is_not_null() for name in ITEM_FIELDS
    ) & (pl.col("raw_item").str.count_matches(_FIELD_NAME) == len(ITEM_FIELDS))
    flagged = items.select("raw_item", usual.alias("usual"))
    usual_items = int(flagged["usual"].sum())
    names = (
        flagged.filter(~pl.col("usual"))
        .select(
            pl.int_range(pl.len()).alias("row"),
            pl.col("raw_item").str.extract_all(_FIELD_NAME),
        )
        .explode("raw_item")
        .select("row", pl.col("raw_item").str.extract(r'"([^"\\]+)"').alias("field"))
        .drop_nulls()
        .unique()
    )
    counts = dict(names.group_by("field").len().iter_rows())
    for name in ITEM_FIELDS:
        counts[name] = counts.get(name, 0) + usual_items
    return counts


def schema_drift(raw: pl.DataFrame) -> Outcome:
    """Fields missing, unexpected (renamed?) or categories unknown in the API's items."""
    if raw.height == 0:
        return Outcome(True, "no items to inspect (no auction)", {"items": 0})
    counts = _field_counts(raw)
    problems: list[str] = []
    for name in ITEM_FIELDS:
        missing = raw.height - counts.get(name, 0)
        if missing:
            problems.append(f"field {name} missing in {missing} of {raw.height} items")
    for name, count in sorted(counts.items()):
        if name not in ITEM_FIELDS:
            problems.append(f"unexpected field {name} in {count} items (renamed?)")
    categories = item_fields(raw).select(pl.col("item").struct.field("flowerGubn"))["flowerGubn"]
    for name, count in categories.drop_nulls().value_counts().iter_rows():
        if name not in KOREAN_NAMES:
            problems.append(f"unknown category {name!r} in {count} items")
    summary = (
        "; ".join(problems)
        if problems
        else f"all {raw.height} items carry exactly the documented fields"
    )
    return Outcome(not problems, summary, {"items": raw.height, "problems": problems})


def rejected_share(raw_rows: int, rejected: pl.DataFrame, threshold: float) -> Outcome:
    share = rejected.height / raw_rows if raw_rows else 0.0
    reasons = (
        dict(rejected.group_by("reason").len().sort("reason").iter_rows())
        if rejected.height
        else {}
    )
    passed = share <= threshold
    summary = (
        f"{rejected.height} of {raw_rows} rows rejected ({share:.2%}); threshold {threshold:.2%}"
        + ("" if passed else f"; reasons {reasons}")
    )
    meta = {
        "rows": raw_rows,
        "rejected": rejected.height,
        "share": round(share, 6),
        "threshold": threshold,
        "by_reason": reasons,
    }
    sample = rejected.select("flower_gubn", "reason", "reason_text", "raw_item")
    return Outcome(passed, summary, meta, _sample(sample))


def categories_answered(calls: dict[str, int], pages: dict[str, int]) -> Outcome:
    missing = [name for name in KOREAN_NAMES if name not in calls]
    passed = not missing
    summary = (
        f"all four categories answered with {sum(calls.values())} calls"
        if passed
        else f"no answer for {', '.join(missing)}"
    )
    return Outcome(passed, summary, {"calls_per_category": calls, "pages_per_category": pages})


def _key_columns(raw: pl.DataFrame) -> pl.DataFrame:
    """The five key fields; names trimmed, as quarantine and the masters compare them."""
    fields = [pl.col("item").struct.field(f) for f in KEY_FIELDS]
    return item_fields(raw).select(
        "flower_gubn",
        *(
            f.str.strip_chars() if name in NAME_KEYS else f
            for name, f in zip(KEY_FIELDS, fields, strict=True)
        ),
    )


def duplicate_keys(raw: pl.DataFrame) -> Outcome:
    keys = _key_columns(raw)
    duplicated = keys.filter(keys.is_duplicated())
    passed = duplicated.height == 0
    summary = (
        "every (date, category, item, variety, grade) is unique"
        if passed
        else (f"{duplicated.height} rows share a key with another row (kept in quarantine)")
    )
    return Outcome(
        passed, summary, {"duplicate_rows": duplicated.height}, _sample(duplicated.unique())
    )


def dates_match(raw: pl.DataFrame) -> Outcome:
    keys = _key_columns(raw).with_columns(
        raw["auction_date"].dt.to_string("%Y-%m-%d").alias("asked")
    )
    wrong = keys.filter(pl.col("saleDate").fill_null("") != pl.col("asked"))
    passed = wrong.height == 0
    summary = (
        "every saleDate is the auction date asked for"
        if passed
        else (
            f"{wrong.height} rows carry another saleDate, e.g. {wrong['saleDate'][0]!r} for {wrong['asked'][0]}"
        )
    )
    return Outcome(passed, summary, {"mismatched_rows": wrong.height}, _sample(wrong))


def names_unique(master: pl.DataFrame, scope: str) -> Outcome:
    """No two rows of a master name the same thing (compared without stray spaces)."""
    key = master.select(pl.col(scope), pl.col("name").str.strip_chars())
    duplicated = master.filter(key.is_duplicated())
    passed = duplicated.height == 0
    summary = (
        f"all {master.height} names are unique within their {scope}"
        if passed
        else (f"{duplicated.height} rows share a name within their {scope}")
    )
    return Outcome(
        passed,
        summary,
        {"rows": master.height, "duplicates": duplicated.height},
        _sample(duplicated),
    )


def _unmatched(
    children: pl.DataFrame, parents: pl.DataFrame, foreign_key: str, ok: str, bad: str
) -> Outcome:
    """Rows whose foreign key names no parent id; `ok` / `bad` are sentences with {n}."""
    missing = children.join(parents, left_on=foreign_key, right_on="id", how="anti")
    passed = missing.height == 0
    summary = ok.format(n=children.height) if passed else bad.format(n=missing.height)
    return Outcome(passed, summary, {"unmatched": missing.height}, _sample(missing))


def varieties_without_item(flowers: pl.DataFrame, flower_types: pl.DataFrame) -> Outcome:
    return _unmatched(
        flowers,
        flower_types,
        "flower_type_id",
        "all {n} varieties point to an item",
        "{n} varieties point to no item",
    )


def _violations(records: pl.DataFrame, offending: pl.DataFrame, ok: str, bad: str) -> Outcome:
    """Records that break a rule; `ok` / `bad` are sentences with {n}."""
    passed = offending.height == 0
    summary = ok.format(n=records.height) if passed else bad.format(n=offending.height)
    meta = {"records": records.height, "violations": offending.height}
    return Outcome(passed, summary, meta, _sample(offending))


def prices_ordered(records: pl.DataFrame) -> Outcome:
    offending = records.filter(
        (pl.col("min_price") > pl.col("avg_price")) | (pl.col("avg_price") > pl.col("max_price"))
    )
    return _violations(
        records,
        offending,
        "min ≤ avg ≤ max in all {n} records",
        "{n} records break min ≤ avg ≤ max",
    )


def totals_consistent(records: pl.DataFrame) -> Outcome:
    """avg = round(total / quantity) on the server, so |avg × quantity − total| ≤ quantity / 2."""
    gap = (pl.col("avg_price") * pl.col("quantity") - pl.col("total_price")).abs()
    offending = records.with_columns(gap.alias("gap")).filter(
        pl.col("gap") > pl.col("quantity") / 2 + 1
    )
    return _violations(
        records,
        offending,
        "avg × quantity matches total in all {n} records",
        "{n} records have avg × quantity off total by more than rounding",
    )


def references_valid(records: pl.DataFrame, flowers: pl.DataFrame) -> Outcome:
    return _unmatched(
        records,
        flowers,
        "flower_id",
        "all {n} records point to a known variety",
        "{n} records point to no variety",
    )


def reconciles(
    raw_per_category: dict[str, int], loaded: dict[str, int], rejected: dict[str, int]
) -> Outcome:
    table = [
        {
            "category": name,
            "raw": raw_per_category.get(name, 0),
            "loaded": loaded.get(name, 0),
            "rejected": rejected.get(name, 0),
        }
        for name in KOREAN_NAMES
    ]
    off = [row for row in table if row["raw"] != row["loaded"] + row["rejected"]]
    passed = not off
    summary = (
        "raw = loaded + rejected in every category"
        if passed
        else (
            "rows unaccounted for in "
            + ", ".join(
                f"{r['category']} (raw {r['raw']}, loaded {r['loaded']}, rejected {r['rejected']})"
                for r in off
            )
        )
    )
    return Outcome(passed, summary, {}, pl.DataFrame(table))


def price_anomalies(today: pl.DataFrame, history: pl.DataFrame, day: date) -> Outcome:
    """Records whose average price is far outside their own trailing history.

    `today` and `history` hold auction records with `auction_date, flower_id, grade, avg_price`
    (plus any label columns in `today`). Robust z-score: 0.6745 × (x − median) / MAD over the
    variety-and-grade's previous `ANOMALY_HISTORY_DAYS` auction days.
    """
    key = ["flower_id", "grade"]
    trailing = (
        history.filter(pl.col("auction_date") < day)
        # Only the history of today's varieties and grades matters; sorting the rest is waste.
        .join(today.select(key).unique(), on=key, how="semi")
        .sort("auction_date", descending=True)
        .group_by(key, maintain_order=True)
        .head(ANOMALY_HISTORY_DAYS)
        .group_by(key)
        .agg(
            pl.len().alias("history_days"),
            pl.col("avg_price").median().alias("median"),
            (pl.col("avg_price") - pl.col("avg_price").median()).abs().median().alias("mad"),
        )
        .filter(pl.col("history_days") >= ANOMALY_MIN_HISTORY)
        .with_columns(pl.max_horizontal("mad", pl.col("median") * ANOMALY_MAD_FLOOR).alias("mad"))
    )
    scored = today.join(trailing, on=key).with_columns(
        (0.6745 * (pl.col("avg_price") - pl.col("median")) / pl.col("mad"))
        .round(1)
        .alias("robust_z"),
        (pl.col("avg_price") / pl.col("median")).round(2).alias("ratio"),
    )
    offenders = scored.filter(
        (pl.col("robust_z").abs() > ANOMALY_Z)
        & ((pl.col("ratio") >= ANOMALY_MIN_RATIO) | (pl.col("ratio") <= 1 / ANOMALY_MIN_RATIO))
    ).sort(pl.col("robust_z").abs(), descending=True)
    passed = offenders.height == 0
    summary = (
        f"{scored.height} of {today.height} records had enough history; none far outside it"
        if passed
        else f"{offenders.height} records far outside their trailing {ANOMALY_HISTORY_DAYS}-auction-day history"
    )
    meta = {
        "records_scored": scored.height,
        "anomalies": offenders.height,
        "z_threshold": ANOMALY_Z,
    }
    return Outcome(passed, summary, meta, _sample(offenders.drop("mad")))


def expected_auction_day(day: date, rows_today: dict[str, int], history: pl.DataFrame) -> Outcome:
    """A category silent on a weekday it has traded on most of the recent same weekdays.

    `history` holds `auction_date, flower_gubn, rows` for earlier dates (only dates with rows).
    """
    weekdays = [day - timedelta(weeks=n) for n in range(1, WEEKDAY_LOOKBACK + 1)]
    traded = history.filter(pl.col("auction_date").is_in(weekdays) & (pl.col("rows") > 0))
    traded_days = dict(
        traded.group_by("flower_gubn").agg(pl.col("auction_date").n_unique()).iter_rows()
    )
    silent = [
        {
            "category": name,
            "same_weekdays_traded": traded_days.get(name, 0),
            "looked_back": WEEKDAY_LOOKBACK,
        }
        for name in KOREAN_NAMES
        if rows_today.get(name, 0) == 0 and traded_days.get(name, 0) >= WEEKDAY_MIN_TRADED
    ]
    weekday = day.strftime("%A")
    passed = not silent
    summary = (
        "every category that usually trades on this weekday has rows"
        if passed
        else "; ".join(
            f"{s['category']} has no rows on {weekday} {day} but traded on {s['same_weekdays_traded']} of the last {WEEKDAY_LOOKBACK} {weekday}s"
            for s in silent
        )
    )
    return Outcome(passed, summary, {"weekday": weekday}, pl.DataFrame(silent) if silent else None)


def history_window_start(first_day: date) -> date:
    """How far back price and calendar history must reach for the given first auction date."""
    # 28 auction days of a twice-weekly category span 14 weeks; 8 same weekdays span 8 weeks.
    return first_day - timedelta(
        days=max(7 * math.ceil(ANOMALY_HISTORY_DAYS / 2), 7 * WEEKDAY_LOOKBACK)
    )
