"""Asset checks: which checks guard which asset, and how their outcomes reach Dagster.

Checks are computed inside the asset steps, on frames already in memory (see `integrity.py`),
and recorded per auction date. In a run that covers several dates Dagster would record a
yielded result once with no partition, so each date's evaluation is logged on its own and one
aggregate result closes the spec.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import dagster as dg
import polars as pl

from flower_assets.integrity import Outcome
from flower_assets.partitions import auction_date_partitions

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    severity: dg.AssetCheckSeverity = ERROR
    blocking: bool = False


RAW_CHECKS = (
    Check(
        "schema_conforms",
        "Items carry exactly the documented fields (lvNm, not lv …) and known categories; blocks downstream on drift.",
        blocking=True,
    ),
    Check(
        "rejected_share_within_threshold",
        "The share of rows that cannot be loaded stays within the configured threshold (default 1%); blocks downstream above it.",
        blocking=True,
    ),
    Check(
        "one_call_per_category_succeeded",
        "All four categories (절화, 관엽, 난, 춘란) answered; shows the calls and pages each took.",
    ),
    Check(
        "no_duplicate_keys",
        "No two rows share (date, category, item, variety, grade); duplicates go to quarantine.",
    ),
    Check("dates_match_partition", "Every item's saleDate is the auction date that was asked for."),
    Check(
        "expected_auction_day",
        "A category silent on a weekday it usually trades on (6 of the last 8 same weekdays) is flagged, so a gap is never taken for a holiday unseen.",
        severity=WARN,
    ),
)
FLOWER_TYPES_CHECKS = (
    Check(
        "names_unique",
        "No two items share a name within a category (compared without stray spaces).",
    ),
)
FLOWERS_CHECKS = (
    Check(
        "names_unique",
        "No two varieties share a name within an item (compared without stray spaces).",
    ),
    Check("no_orphans", "Every variety points to an existing item."),
)
BIDDING_CHECKS = (
    Check("prices_ordered", "min_price ≤ avg_price ≤ max_price in every record."),
    Check(
        "totals_consistent",
        "|avg_price × quantity − total_price| is within the server's rounding (quantity / 2).",
    ),
    Check("references_valid", "Every record's flower_id exists in flowers."),
    Check(
        "reconciles_with_raw",
        "Per category, raw rows = loaded rows + rejected rows: nothing is lost.",
    ),
    Check(
        "price_anomalies",
        "Average prices far outside the variety-and-grade's trailing 28-auction-day history (robust z-score > 5 and at least ×2 or ÷2).",
        severity=WARN,
    ),
)


def check_specs(asset: str, checks: tuple[Check, ...]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            check.name,
            asset=asset,
            description=check.description,
            blocking=check.blocking,
            partitions_def=auction_date_partitions,
        )
        for check in checks
    ]


def markdown_table(frame: pl.DataFrame) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")[:120]

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * frame.width]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.rows()]
    return "\n".join(lines)


def _metadata(outcome: Outcome) -> dict[str, object]:
    metadata: dict[str, object] = {"summary": outcome.summary}
    for key, value in outcome.metadata.items():
        metadata[key] = dg.MetadataValue.json(value) if isinstance(value, dict | list) else value
    if outcome.sample is not None:
        metadata["sample"] = dg.MetadataValue.md(markdown_table(outcome.sample))
    return metadata


class CheckRecorder:
    """Collects one asset's check outcomes per auction date and hands them to Dagster."""

    def __init__(self, context: dg.AssetExecutionContext, asset: str, checks: tuple[Check, ...]):
        self.context = context
        self.asset_key = dg.AssetKey(asset)
        self.checks = {check.name: check for check in checks}
        self.outcomes: dict[str, list[tuple[date, Outcome]]] = defaultdict(list)

    def record(self, day: date, name: str, outcome: Outcome) -> None:
        check = self.checks[name]
        self.outcomes[name].append((day, outcome))
        if not outcome.passed:
            log = self.context.log.error if check.severity == ERROR else self.context.log.warning
            blocking = " (blocking: downstream assets will not run)" if check.blocking else ""
            log(
                f"{self.asset_key.to_user_string()} {day}: check {name} failed{blocking}: {outcome.summary}"
            )

    def results(self) -> list[dg.AssetCheckResult]:
        several = len(self.context.partition_keys) > 1
        results = []
        for name, check in self.checks.items():
            evaluated = self.outcomes.get(name, [])
            if not several and evaluated:
                ((_, outcome),) = evaluated
                results.append(
                    dg.AssetCheckResult(
                        check_name=name,
                        passed=outcome.passed,
                        severity=check.severity,
                        metadata=_metadata(outcome),
                        description=outcome.summary,
                    )
                )
                continue
            for day, outcome in evaluated:
                self.context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=self.asset_key,
                        check_name=name,
                        passed=outcome.passed,
                        severity=check.severity,
                        metadata=_metadata(outcome),
                        description=outcome.summary,
                        partition=day.isoformat(),
                    )
                )
            failed = [day.isoformat() for day, outcome in evaluated if not outcome.passed]
            results.append(
                dg.AssetCheckResult(
                    check_name=name,
                    passed=not failed,
                    severity=check.severity,
                    description=f"{len(evaluated) - len(failed)} of {len(evaluated)} auction dates passed",
                    metadata={
                        "auction_dates_checked": len(evaluated),
                        "auction_dates_failed": dg.MetadataValue.json(failed),
                    },
                )
            )
        return results
