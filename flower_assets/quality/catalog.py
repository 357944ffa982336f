"""Every check, declared once: its rule, what it guards, what it tolerates, what failing does.

A check's name is its rule's: the function of that name in `integrity.py` (auction tables) or
`market.py` (market tables), and the name Dagster, the alerts and the stored history know it by.
Descriptions and tolerances are written from the constants the rules use. The Dagster glue in
`flower_assets.defs.judging` turns each declaration into an asset check; the raw step decides
with `blocked_by` whether a date may load; `checks_page` writes docs/checks.md.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Generic, NamedTuple, ParamSpec

import polars as pl

from flower_assets import settings
from flower_assets.market.price_index import BASE_VALUE
from flower_assets.quality import integrity, market
from flower_assets.quality.integrity import Outcome
from flower_assets.source.categories import KOREAN_NAMES
from flower_assets.transform.raw import rows_per_category
from flower_assets.warehouse.schemas import (
    BIDDING,
    CATEGORY_PRICE_INDEX,
    DAILY_ITEM_PRICES,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    VARIETY_PRICE_CHANGES,
)

ERROR, WARN = "ERROR", "WARN"

Args = ParamSpec("Args")


@dataclass(frozen=True)
class Check(Generic[Args]):
    """One check of one table. Outcomes are keyed by it; `judge` runs its rule."""

    rule: Callable[Args, Outcome]
    description: str  # what it guards
    tolerance: str = "nothing"  # completes "Tolerates …"
    severity: str = ERROR  # as Dagster names it: ERROR or WARN
    # Blocking is per auction date: a date that fails keeps its previous normalized version,
    # the other dates of the run load (see flower_assets.steps).
    blocking: bool = False
    # A date that fails it fails the run: its step raises once it has judged every date. Not
    # Dagster's `blocking`, which would also skip the steps after it (the masters' checks).
    fails_run: bool = False
    # Says something on a date without auction (an empty answer, a closed day); the others have
    # nothing to judge there, and their result says so instead of "0 of 0 records".
    judges_empty_dates: bool = False

    @property
    def name(self) -> str:
        return self.rule.__name__

    def judge(self, *args: Args.args, **kwargs: Args.kwargs) -> Outcome:
        return self.rule(*args, **kwargs)

    @property
    def effect(self) -> str:
        if self.blocking:
            return (
                "blocking: a date that fails keeps its previous version in flower_types, "
                "flowers and bidding_flowers; the run's other dates load"
            )
        if self.fails_run:
            return "a date that fails it fails the run, after the run's other dates loaded"
        return "not blocking"

    @property
    def full_description(self) -> str:
        """What the UI shows."""
        return (
            f"{self.description} Tolerates {self.tolerance}. "
            f"Severity {self.severity}; {self.effect}."
        )


SCHEMA_CONFORMS = Check(
    integrity.schema_conforms,
    "Items carry exactly the documented fields (lvNm, not lv …) and only the known categories "
    f"({', '.join(KOREAN_NAMES)}).",
    tolerance="nothing: one drifting item fails the date",
    blocking=True,
    judges_empty_dates=True,
)
REJECTED_SHARE_WITHIN_THRESHOLD = Check(
    integrity.rejected_share_within_threshold,
    "The share of the date's rows that cannot be loaded stays within "
    f"{settings.max_rejected_share.variable}; rejected rows are kept with their reason.",
    tolerance=f"up to {settings.max_rejected_share.variable} of the date's rows "
    f"(default {settings.max_rejected_share.default:.0%})",
    blocking=True,
)
NO_DUPLICATE_KEYS = Check(
    integrity.no_duplicate_keys,
    "No two rows share (date, category, item, variety, grade), names compared in their "
    "normalized form (NFC, no invisible characters, trimmed); the server aggregates on this "
    "key, so a duplicate is a source fault. Rows of one key with different numbers are all "
    "kept in quarantine; of identical copies one loads. The summary counts both.",
)
DATES_MATCH_PARTITION = Check(
    integrity.dates_match_partition, "Every item's saleDate is the auction date asked for."
)
EXPECTED_AUCTION_DAY = Check(
    integrity.expected_auction_day,
    "A category silent on a weekday it traded on in at least "
    f"{integrity.WEEKDAY_MIN_TRADED} of the last {integrity.WEEKDAY_LOOKBACK} same weekdays is "
    "flagged, so a gap is never taken for a holiday unseen; on a Korean public holiday (the "
    "market is closed: lunar, substitute and election days included) it passes naming the "
    "holiday.",
    tolerance="silence where a category traded on fewer than "
    f"{integrity.WEEKDAY_MIN_TRADED} of the last {integrity.WEEKDAY_LOOKBACK} same weekdays, "
    "and on public holidays",
    severity=WARN,
    judges_empty_dates=True,
)
RAW_CHECKS = (
    SCHEMA_CONFORMS,
    REJECTED_SHARE_WITHIN_THRESHOLD,
    NO_DUPLICATE_KEYS,
    DATES_MATCH_PARTITION,
    EXPECTED_AUCTION_DAY,
)


class MasterChecks(NamedTuple):
    """The checks of flower_types and of flowers: the same rules, in each master's words."""

    lookalike_names: Check
    seen_dates: Check


def _master_checks(thing: str, things: str, scope: str) -> MasterChecks:
    return MasterChecks(
        Check(
            integrity.no_lookalike_names,
            f"No {thing} traded on the date has a name that differs from another's within its "
            f"{scope} only in Unicode form (NFC/NFD) or invisible characters: such twins split "
            "one price history.",
        ),
        Check(
            integrity.seen_dates_match_records,
            f"{things.capitalize()} traded on the date have first_seen_date ≤ date ≤ "
            f"last_seen_date, and {things} first or last seen on the date have a record on it "
            "(a correction can remove the last record).",
        ),
    )


FLOWER_TYPES_CHECKS = _master_checks("item", "items", "category")
FLOWERS_CHECKS = _master_checks("variety", "varieties", "item")

AUCTION_DATE_LOADED = Check(
    integrity.auction_date_loaded,
    "The date's latest answer is in bidding_flowers. Fails with the cause when its fetch "
    "failed (error code, HTTP, unreadable answer, quota), its answer is blocked, or loading it "
    "failed; the tables keep their previous version of the date meanwhile.",
    fails_run=True,
    judges_empty_dates=True,
)
PRICE_RULES_TOLERANCE = f"up to {integrity.PRICE_RULE_TOLERATED_SHARE:.1%} of the date's records"
PRICES_ORDERED = Check(
    integrity.prices_ordered,
    f"min_price ≤ avg_price ≤ max_price. About {integrity.PUBLISHED_INVERTED_SHARE:.2%} of "
    "published records break it (settlement rounding).",
    tolerance=PRICE_RULES_TOLERANCE,
)
TOTALS_CONSISTENT = Check(
    integrity.totals_consistent,
    "avg_price × quantity is total_price within half the quantity: the server rounds "
    "total_price / quantity to whole won.",
    tolerance=PRICE_RULES_TOLERANCE,
)
RECONCILES_WITH_RAW = Check(
    integrity.reconciles_with_raw,
    "Per category, raw rows = loaded rows + rejected rows: nothing is lost. A blocked date "
    "fails it until its raw content loads.",
)
PRICE_ANOMALIES = Check(
    integrity.price_anomalies,
    "Average prices far outside the variety-and-grade's trailing "
    f"{integrity.ANOMALY_HISTORY_DAYS}-auction-day history (robust z-score > "
    f"{integrity.ANOMALY_Z:g} and at least ×{integrity.ANOMALY_MIN_RATIO:g} or "
    f"÷{integrity.ANOMALY_MIN_RATIO:g}).",
    tolerance=f"a price within a robust z-score of {integrity.ANOMALY_Z:g}, or within "
    f"×{integrity.ANOMALY_MIN_RATIO:g} or ÷{integrity.ANOMALY_MIN_RATIO:g} of its history's "
    f"median; a variety and grade with fewer than {integrity.ANOMALY_MIN_HISTORY} earlier "
    "auction days is not judged",
    severity=WARN,
)
BIDDING_CHECKS = (
    AUCTION_DATE_LOADED,
    PRICES_ORDERED,
    TOTALS_CONSISTENT,
    RECONCILES_WITH_RAW,
    PRICE_ANOMALIES,
)

# Every market table's rows of a date rest on the same history (flower_assets.market.history).
BUILT_ON_CURRENT_HISTORY = Check(
    market.built_on_current_history,
    "The date's market rows were built from the auction records its history holds now: each "
    "category's records up to the date. Fails when any of them was first loaded, corrected "
    "or removed after the build, whatever the order or the run, until the date is rebuilt.",
    judges_empty_dates=True,
)
RECONCILES_WITH_RECORDS = Check(
    market.reconciles_with_records,
    "Per category, Σ quantity and Σ total_price equal those of the date's records in "
    "bidding_flowers: fails when the records changed and the date was not rebuilt.",
)
DAILY_ITEM_PRICES_CHECKS = (BUILT_ON_CURRENT_HISTORY, RECONCILES_WITH_RECORDS)
COVERS_EVERY_RECORD = Check(
    market.covers_every_record,
    "One row per record of the date in bidding_flowers, at the record's quantity and price.",
)
VARIETY_PRICE_CHANGES_CHECKS = (BUILT_ON_CURRENT_HISTORY, COVERS_EVERY_RECORD)
CHAIN_CONSISTENT = Check(
    market.chain_consistent,
    "index_value = the category's previous index_value × exp(chain_link), and "
    f"{BASE_VALUE:g} on the base date: fails when an earlier date changed and this one was not "
    "rebuilt.",
    tolerance=f"a relative difference of {market.CHAIN_TOLERANCE:g} (floating-point arithmetic)",
)
LINKS_REST_ON_ENOUGH_VOLUME = Check(
    market.links_rest_on_enough_volume,
    "Each chain link rests on matched pairs carrying at least "
    f"{market.MIN_MATCHED_QUANTITY_SHARE:.0%} of the category's quantity on the date; below "
    "that the index moves on little.",
    tolerance=f"no link below {market.MIN_MATCHED_QUANTITY_SHARE:.0%} of the quantity",
    severity=WARN,
)
CATEGORY_PRICE_INDEX_CHECKS = (
    BUILT_ON_CURRENT_HISTORY,
    CHAIN_CONSISTENT,
    LINKS_REST_ON_ENOUGH_VOLUME,
)

# Table -> its checks, in the order the tables are built.
CHECKS: dict[str, tuple[Check, ...]] = {
    RAW.name: RAW_CHECKS,
    FLOWER_TYPES.name: FLOWER_TYPES_CHECKS,
    FLOWERS.name: FLOWERS_CHECKS,
    BIDDING.name: BIDDING_CHECKS,
    DAILY_ITEM_PRICES.name: DAILY_ITEM_PRICES_CHECKS,
    VARIETY_PRICE_CHANGES.name: VARIETY_PRICE_CHANGES_CHECKS,
    CATEGORY_PRICE_INDEX.name: CATEGORY_PRICE_INDEX_CHECKS,
}


def judge_raw(
    day: date,
    decoded: pl.DataFrame,
    rejected: pl.DataFrame,
    calendar: pl.DataFrame,
    max_rejected_share: float,
) -> dict[Check, Outcome]:
    """Every raw check of one auction date.

    `decoded` is the date's raw rows with their items decoded (`item_fields`), `rejected` what
    quarantine keeps of them, and `calendar` rows per earlier date and category.
    """
    return {
        SCHEMA_CONFORMS: SCHEMA_CONFORMS.judge(decoded),
        REJECTED_SHARE_WITHIN_THRESHOLD: REJECTED_SHARE_WITHIN_THRESHOLD.judge(
            decoded.height, rejected, max_rejected_share
        ),
        NO_DUPLICATE_KEYS: NO_DUPLICATE_KEYS.judge(decoded, rejected),
        DATES_MATCH_PARTITION: DATES_MATCH_PARTITION.judge(decoded),
        EXPECTED_AUCTION_DAY: EXPECTED_AUCTION_DAY.judge(day, rows_per_category(decoded), calendar),
    }


def blocked_by(checks: tuple[Check, ...], outcomes: Mapping[Check, Outcome]) -> str | None:
    """The failed blocking checks of one date, as a sentence, or None if it may load."""
    failed = [
        f"{check.name}: {outcomes[check].summary}"
        for check in checks
        if check.blocking and not outcomes[check].passed
    ]
    return "; ".join(failed) or None


def outcomes_json(outcomes: Mapping[Check, Outcome]) -> str:
    """Outcomes as JSON text keyed by check name, to be stored with what they judged."""
    return json.dumps(
        {
            check.name: {
                "passed": outcome.passed,
                "summary": outcome.summary,
                "metadata": outcome.metadata,
                "sample": None if outcome.sample is None else outcome.sample.write_json(),
            }
            for check, outcome in outcomes.items()
        },
        ensure_ascii=False,
        default=str,
    )


def outcomes_from_json(text: str, checks: tuple[Check, ...]) -> dict[Check, Outcome]:
    """The outcomes `outcomes_json` stored, of those of `checks` it holds."""
    stored = json.loads(text)

    def sample(frame: str | None) -> pl.DataFrame | None:
        return None if frame is None else pl.read_json(io.StringIO(frame))

    return {
        check: Outcome(each["passed"], each["summary"], each["metadata"], sample(each["sample"]))
        for check in checks
        if (each := stored.get(check.name)) is not None
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def checks_page() -> str:
    """docs/checks.md: every check of every table, from the declarations above."""
    lines = [
        "# Checks",
        "",
        "<!-- Generated by `uv run python -m flower_assets.docs` from "
        "flower_assets/quality/catalog.py: edit the declarations there, not this page. -->",
        "",
        "Every check judges one auction date of one table, on what the warehouse stores, after "
        "each load and again for dates picked in `flower_checks_job`. Severity ERROR fails the "
        "check red, WARN yellow. A date that fails a blocking check keeps its previous version "
        "in the normalized tables while the run's other dates load; a check that fails the run "
        "does so after the other dates loaded. A check's rule is the function of its name in "
        "`flower_assets/quality/integrity.py` (auction tables) or "
        "`flower_assets/quality/market.py` (market tables).",
        "",
        "| Check | Table | What it guards | Severity | Blocking | Tolerates |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for table, checks in CHECKS.items():
        for check in checks:
            blocking = (
                "blocks the date"
                if check.blocking
                else "fails the run"
                if check.fails_run
                else "no"
            )
            lines.append(
                f"| `{check.name}` | `{table}` | {_cell(check.description)} | {check.severity} "
                f"| {blocking} | {_cell(check.tolerance)} |"
            )
    return "\n".join(lines) + "\n"
