"""The auction tables' rules, pure functions on polars frames: each returns an Outcome a
person can act on, and is named like the check it decides (its declaration is in `catalog.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from flower_assets.source.categories import KOREAN_NAMES
from flower_assets.source.envelope import ITEM_FIELDS, KEY_FIELDS
from flower_assets.source.market_calendar import public_holiday
from flower_assets.transform.names import canonical_name
from flower_assets.transform.raw import item_fields

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
# The share of published records that have min > avg (settlement rounding, docs/at-api.md)...
PUBLISHED_INVERTED_SHARE = 0.0008
# ... so a price rule fails only when more of a date's records break it than this: a normal day
# is green and a broken feed (swapped or scaled columns) is red.
PRICE_RULE_TOLERATED_SHARE = 0.005
# expected_auction_day looks back this many same weekdays.
WEEKDAY_LOOKBACK = 8
WEEKDAY_MIN_TRADED = 6


@dataclass
class Outcome:
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sample: pl.DataFrame | None = None


def sample_of(frame: pl.DataFrame) -> pl.DataFrame | None:
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


def schema_conforms(raw: pl.DataFrame) -> Outcome:
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


def rejected_share_within_threshold(
    raw_rows: int, rejected: pl.DataFrame, threshold: float
) -> Outcome:
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
    return Outcome(passed, summary, meta, sample_of(sample))


def _key_columns(raw: pl.DataFrame) -> pl.DataFrame:
    """The five key fields; names in their canonical form, as quarantine and the masters compare
    them."""
    fields = [pl.col("item").struct.field(f) for f in KEY_FIELDS]
    return item_fields(raw).select(
        "flower_gubn",
        *(
            canonical_name(f) if name in NAME_KEYS else f
            for name, f in zip(KEY_FIELDS, fields, strict=True)
        ),
    )


def no_duplicate_keys(raw: pl.DataFrame, rejected: pl.DataFrame) -> Outcome:
    """Rows that share a key; `rejected` is what quarantine keeps aside of `raw`, so the summary
    says how many of them are really kept aside (of identical copies, one loads)."""
    keys = _key_columns(raw)
    shared = keys.is_duplicated()
    duplicated = keys.filter(shared)
    # A row kept aside is one of them if its exact item is: identical texts share the key.
    items = raw.select("flower_gubn", "raw_item").filter(shared).unique()
    quarantined = rejected.join(items, on=["flower_gubn", "raw_item"], how="semi").height
    loaded = duplicated.height - quarantined
    passed = duplicated.height == 0
    summary = (
        "every (date, category, item, variety, grade) is unique"
        if passed
        else f"{duplicated.height} rows share a key with another row: "
        + (
            f"{quarantined} kept in quarantine, {loaded} loaded (of identical copies, one loads)"
            if loaded
            else f"all {quarantined} kept in quarantine"
        )
    )
    meta = {"duplicate_rows": duplicated.height, "quarantined_rows": quarantined}
    return Outcome(passed, summary, meta, sample_of(duplicated.unique()))


def dates_match_partition(raw: pl.DataFrame) -> Outcome:
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
    return Outcome(passed, summary, {"mismatched_rows": wrong.height}, sample_of(wrong))


def _violations(records: pl.DataFrame, offending: pl.DataFrame, rule: str) -> Outcome:
    """Records that break a price rule; fails only past the share real data shows (see above)."""
    share = offending.height / records.height if records.height else 0.0
    passed = share <= PRICE_RULE_TOLERATED_SHARE
    summary = (
        f"{offending.height} of {records.height} records break {rule} ({share:.2%}; "
        f"up to {PRICE_RULE_TOLERATED_SHARE:.1%} is tolerated)"
    )
    meta = {
        "records": records.height,
        "violations": offending.height,
        "share": round(share, 6),
        "tolerated_share": PRICE_RULE_TOLERATED_SHARE,
    }
    return Outcome(passed, summary, meta, sample_of(offending))


def prices_ordered(records: pl.DataFrame) -> Outcome:
    offending = records.filter(
        (pl.col("min_price") > pl.col("avg_price")) | (pl.col("avg_price") > pl.col("max_price"))
    )
    return _violations(records, offending, "min ≤ avg ≤ max")


def totals_consistent(records: pl.DataFrame) -> Outcome:
    """avg = round(total / quantity) on the server, so |avg × quantity − total| ≤ quantity / 2."""
    gap = (pl.col("avg_price") * pl.col("quantity") - pl.col("total_price")).abs()
    offending = records.with_columns(gap.alias("gap")).filter(
        pl.col("gap") > pl.col("quantity") / 2 + 1
    )
    return _violations(records, offending, "|avg × quantity − total| ≤ quantity / 2")


def reconciles_with_raw(
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
    return Outcome(passed, summary, meta, sample_of(offenders.drop("mad")))


def expected_auction_day(day: date, rows_today: dict[str, int], history: pl.DataFrame) -> Outcome:
    """A category silent on a weekday it has traded on most of the recent same weekdays.

    `history` holds `auction_date, flower_gubn, rows` for earlier dates (only dates with rows).
    On a Korean public holiday the market is closed (`market_calendar`): no category is
    expected, and the summary names the holiday.
    """
    holiday = public_holiday(day)
    if holiday is not None:
        traded = [name for name in KOREAN_NAMES if rows_today.get(name, 0)]
        summary = (
            f"{day} is a public holiday ({holiday}), yet {', '.join(traded)} traded"
            if traded
            else f"no auction on {day}: public holiday ({holiday})"
        )
        return Outcome(True, summary, {"weekday": day.strftime("%A"), "public_holiday": holiday})
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


def lookalike_twins(master: pl.DataFrame, scope: str) -> pl.DataFrame:
    """Rows of a master whose name looks identical to another row's within its scope.

    `master` is flower_types (scope flower_gubn) or flowers (scope flower_type_id).
    """
    keyed = master.with_columns(canonical_name(pl.col("name")).alias("looks_like"))
    return keyed.filter(pl.struct(scope, "looks_like").is_duplicated())


def no_lookalike_names(twins: pl.DataFrame, scope: str, referenced: pl.Series) -> Outcome:
    """Names of the date's items (varieties) that look identical to another row's name.

    `twins` comes from `lookalike_twins`; `referenced` holds the ids the date's auction records
    reference. Twins split one thing's price history.
    """
    traded = twins.filter(pl.col("id").is_in(referenced.implode())).select(scope, "looks_like")
    today = twins.join(traded.unique(), on=[scope, "looks_like"], how="semi")
    passed = today.height == 0
    summary = (
        f"none of the {referenced.n_unique()} names traded looks like another"
        if passed
        else f"{today.height} rows share a name that only differs in Unicode form or invisible characters"
    )
    sample = today.select("id", scope, "name", pl.col("name").str.encode("hex").alias("utf8_hex"))
    return Outcome(
        passed, summary, {"lookalike_rows": today.height}, sample_of(sample.sort(scope, "id"))
    )


def seen_dates_match_records(master: pl.DataFrame, referenced: pl.Series, day: date) -> Outcome:
    """first_seen_date ≤ day ≤ last_seen_date for every row the date's records reference, and a
    row first or last seen on the day is referenced by them (a correction can remove the last
    record of a variety: its last_seen_date must not stay on that date)."""
    used = master.filter(pl.col("id").is_in(referenced.implode()))
    # A traded row without seen dates (null) is outside them too.
    outside = used.filter(
        ((pl.col("first_seen_date") > day) | (pl.col("last_seen_date") < day)).fill_null(True)
    )
    stale = master.filter(
        ((pl.col("first_seen_date") == day) | (pl.col("last_seen_date") == day))
        & ~pl.col("id").is_in(referenced.implode())
    )
    wrong = pl.concat([outside, stale]).unique("id")
    passed = wrong.height == 0
    summary = (
        f"first/last seen dates agree with the {used.height} rows traded on {day}"
        if passed
        else f"{outside.height} rows traded on {day} outside their first/last seen dates; "
        f"{stale.height} rows first or last seen on {day} without a record that day"
    )
    meta = {"rows_traded": used.height, "outside_range": outside.height, "stale": stale.height}
    return Outcome(passed, summary, meta, sample_of(wrong.sort("id")))


def auction_date_loaded(day: date, cause: str | None, records: int) -> Outcome:
    """The date's latest answer is in the auction records (`unchanged.not_loaded`'s cause if not)."""
    if cause is None:
        return Outcome(True, f"{day}: its latest answer is loaded ({records} records)")
    return Outcome(False, f"{day} is not loaded: {cause}", {"cause": cause})
