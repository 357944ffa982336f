"""Which integrity rules guard each table: their names, what they say, severity, blocking.

The rules themselves are the functions of `integrity.py`; Dagster's checks are built from this
catalog in `flower_assets.defs.judging`, and the raw step decides with `blocked_by` whether a
date may load.
"""

from dataclasses import dataclass

from flower_assets.quality import integrity
from flower_assets.quality.integrity import Outcome

ERROR, WARN = "ERROR", "WARN"


@dataclass(frozen=True)
class Check:
    name: str
    description: str
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
    def full_description(self) -> str:
        if self.blocking:
            effect = (
                "blocking: a date that fails keeps its previous version in flower_types, "
                "flowers and bidding_flowers; the run's other dates load"
            )
        elif self.fails_run:
            effect = "a date that fails it fails the run, after the run's other dates loaded"
        else:
            effect = "not blocking"
        return f"{self.description} Severity {self.severity}; {effect}."


RAW_CHECKS = (
    Check(
        "schema_conforms",
        "Items carry exactly the documented fields (lvNm, not lv …) and only the four known "
        "categories. Tolerates nothing: one drifting item fails the date.",
        blocking=True,
        judges_empty_dates=True,
    ),
    Check(
        "rejected_share_within_threshold",
        "The share of the date's rows that cannot be loaded stays within "
        "FLOWER_MAX_REJECTED_SHARE (default 1%); rejected rows are kept with their reason.",
        blocking=True,
    ),
    Check(
        "answer_complete",
        "Each category's answer is one page, or its pages repeat no row: ties in totQty reorder "
        "rows between calls, so a repeated row means the walk skipped as many.",
        judges_empty_dates=True,
    ),
    Check(
        "no_duplicate_keys",
        "No two rows share (date, category, item, variety, grade), names compared in their "
        "normalized form (NFC, no invisible characters, trimmed); the server aggregates on this "
        "key, so a duplicate is a source fault. Rows of one key with different numbers are all "
        "kept in quarantine; of identical copies one loads. The summary counts both.",
    ),
    Check("dates_match_partition", "Every item's saleDate is the auction date asked for."),
    Check(
        "expected_auction_day",
        "A category silent on a weekday it traded on in 6 of the last 8 same weekdays is "
        "flagged, so a gap is never taken for a holiday unseen; on a Korean public holiday "
        "(the market is closed: lunar, substitute and election days included) it passes "
        "naming the holiday.",
        severity=WARN,
        judges_empty_dates=True,
    ),
)


def _master_checks(thing: str, things: str, scope: str) -> tuple[Check, ...]:
    return (
        Check(
            "no_lookalike_names",
            f"No {thing} traded on the date has a name that differs from another's "
            f"within its {scope} only in Unicode form (NFC/NFD) or invisible characters: such "
            "twins split one price history.",
        ),
        Check(
            "seen_dates_match_records",
            f"{things.capitalize()} traded on the date have first_seen_date ≤ date ≤ "
            f"last_seen_date, and {things} first or last seen on the date have a record on it "
            "(a correction can remove the last record).",
        ),
    )


FLOWER_TYPES_CHECKS = _master_checks("item", "items", "category")
FLOWERS_CHECKS = _master_checks("variety", "varieties", "item")
BIDDING_CHECKS = (
    Check(
        "auction_date_loaded",
        "The date's latest answer is in bidding_flowers. Fails with the cause when its fetch "
        "failed (error code, HTTP, unreadable answer, quota), its answer is blocked, or "
        "loading it failed; the tables keep their previous version of the date meanwhile.",
        fails_run=True,
        judges_empty_dates=True,
    ),
    Check(
        "prices_ordered",
        "min_price ≤ avg_price ≤ max_price. About 0.08% of published records break it "
        f"(settlement rounding): fails only above {integrity.PRICE_RULE_TOLERATED_SHARE:.1%} "
        "of the date's records.",
    ),
    Check(
        "totals_consistent",
        "|avg_price × quantity − total_price| ≤ quantity / 2 (the server's rounding); fails "
        f"only above {integrity.PRICE_RULE_TOLERATED_SHARE:.1%} of the date's records.",
    ),
    Check(
        "reconciles_with_raw",
        "Per category, raw rows = loaded rows + rejected rows: nothing is lost. A blocked date "
        "fails it until its raw content loads.",
    ),
    Check(
        "price_anomalies",
        "Average prices far outside the variety-and-grade's trailing 28-auction-day history "
        "(robust z-score > 5 and at least ×2 or ÷2).",
        severity=WARN,
    ),
)


def blocked_by(checks: tuple[Check, ...], outcomes: dict[str, Outcome]) -> str | None:
    """The failed blocking checks of one date, as a sentence, or None if it may load."""
    failed = [
        f"{check.name}: {outcomes[check.name].summary}"
        for check in checks
        if check.blocking and not outcomes[check.name].passed
    ]
    return "; ".join(failed) or None


# Every market table's rows of a date rest on the same history (flower_assets.market.history).
BUILT_ON_CURRENT_HISTORY = Check(
    "built_on_current_history",
    "The date's market rows were built from the auction records its history holds now: each "
    "category's records up to the date. Fails when any of them was first loaded, corrected "
    "or removed after the build, whatever the order or the run, until the date is rebuilt.",
    judges_empty_dates=True,
)
DAILY_ITEM_PRICES_CHECKS = (
    BUILT_ON_CURRENT_HISTORY,
    Check(
        "reconciles_with_records",
        "Per category, Σ quantity and Σ total_price equal those of the date's records in "
        "bidding_flowers: fails when the records changed and the date was not rebuilt.",
    ),
)
VARIETY_PRICE_CHANGES_CHECKS = (
    BUILT_ON_CURRENT_HISTORY,
    Check(
        "covers_every_record",
        "One row per record of the date in bidding_flowers, at the record's quantity and price.",
    ),
)
CATEGORY_PRICE_INDEX_CHECKS = (
    BUILT_ON_CURRENT_HISTORY,
    Check(
        "chain_consistent",
        "index_value = the category's previous index_value × exp(chain_link), and 100 on the "
        "base date: fails when an earlier date changed and this one was not rebuilt.",
    ),
    Check(
        "links_rest_on_enough_volume",
        "Each chain link rests on matched pairs carrying at least 25% of the category's "
        "quantity on the date; below that the index moves on little.",
        severity=WARN,
    ),
)
