"""Asset checks: what guards each table, judged per auction date on what the warehouse stores.

Each asset's checks are one partitioned `@multi_asset_check` step. It runs after its asset in
the same run, or on its own for chosen dates (a launch with only checks selected, as the UI's
Execute sends it), reading the warehouse. It logs one evaluation per check and auction date,
each pointing at that date's latest materialization: Dagster's check state counts an evaluation
for a date only then (docs/architecture.md, Dagster facts), whatever the run's range. The checks
are declared in `flower_assets.quality.catalog`; a judge gives their outcomes per date, keyed by
declaration.

`flower_checks_job` judges every check again for dates picked in the UI. It is an op job, one
op per asset, because the UI offers its date picker ("Launch backfill…" on the Partitions tab)
and a Launchpad only to op jobs; each op yields the very evaluations the asset's check step
yields (`AssetChecks.evaluate`), so the checks' Partitions views count them.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import dagster as dg
import polars as pl

from flower_assets.defs.partitions import auction_date_partitions, auction_dates
from flower_assets.defs.resources import (
    PriceIndexSettings,
    QuarantineThreshold,
    WarehouseResource,
)
from flower_assets.quality.catalog import CHECKS, ERROR, Check
from flower_assets.quality.integrity import Outcome
from flower_assets.steps.report import LOAD_FAILED, no_auction, working_on
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
)


@dataclass(frozen=True)
class CheckSettings:
    """The settings the rules judge by."""

    max_rejected_share: float  # FLOWER_MAX_REJECTED_SHARE
    index_base: date | None  # FLOWER_INDEX_BASE_DATE: part of each market date's history


# A check step's context, or an op's of flower_checks_job: the judges read `instance` and `run`.
JudgeContext = dg.AssetCheckExecutionContext | dg.OpExecutionContext

Judge = Callable[
    [JudgeContext, Warehouse, list[date], CheckSettings],
    Iterator[tuple[date, dict[Check, Outcome]]],
]


def by_date(frame: pl.DataFrame) -> dict[date, pl.DataFrame]:
    """The rows of each auction date, split once instead of filtered per date."""
    return {key[0]: part for key, part in frame.partition_by("auction_date", as_dict=True).items()}


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


def _target(record: dg.EventLogRecord) -> object:
    # AssetCheckEvaluation's public `target_materialization_data` takes a record type that
    # Dagster exports only through its serialized form, which event logs persist (so it stays
    # readable across releases): build it from that form instead of a private import.
    return dg.deserialize_value(
        json.dumps(
            {
                "__class__": "AssetCheckEvaluationTargetMaterializationData",
                "storage_id": record.storage_id,
                "run_id": record.run_id,
                "timestamp": record.timestamp,
            }
        )
    )


def latest_materialization_records(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str]
) -> dict[str, dg.EventLogRecord]:
    """Each partition's latest materialization record."""
    found: dict[str, dg.EventLogRecord] = {}
    # After a run of the asset the newest len(partitions) records are usually exactly these.
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions),
        limit=len(partitions),
    ).records
    for record in records:
        found.setdefault(record.partition_key, record)
    for partition in [p for p in partitions if p not in found]:
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
        ).records
        if latest:
            found[partition] = latest[0]
    return found


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str]
) -> dict[str, object]:
    """Each partition's latest materialization, as a check evaluation's target."""
    records = latest_materialization_records(instance, asset_key, partitions)
    return {partition: _target(record) for partition, record in records.items()}


def failed_loads(instance: dg.DagsterInstance, days: list[date]) -> dict[date, str]:
    """Dates whose latest materialization of an auction asset says loading them failed.

    The Dagster event log knows it even when the warehouse could not record it (a connection
    killed, a read-only file).
    """
    found: dict[date, str] = {}
    for table in (RAW, FLOWER_TYPES, FLOWERS, BIDDING):
        records = latest_materialization_records(
            instance, dg.AssetKey(table.name), [day.isoformat() for day in days]
        )
        for partition, record in records.items():
            materialization = record.asset_materialization
            failed = materialization.metadata.get(LOAD_FAILED) if materialization else None
            if failed is not None:
                found.setdefault(date.fromisoformat(partition), f"{table.name}: {failed.value}")
    return found


@dataclass(frozen=True)
class AssetChecks:
    """An asset's judge: what its check step and flower_checks_job run for its checks."""

    asset: str
    judge: Judge

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey(self.asset)

    @property
    def checks(self) -> tuple[Check, ...]:
        return CHECKS[self.asset]

    def evaluate(
        self,
        context: JudgeContext,
        warehouse: WarehouseResource,
        settings: CheckSettings,
        days: list[date],
        selected: list[Check],
        failing: list[tuple[date, str]],
    ) -> Iterator[dg.AssetCheckEvaluation]:
        """One evaluation per selected check and date, aimed at the date's latest materialization.

        Appends to `failing` each date that fails a check that fails the run (auction_date_loaded).
        """
        targets = latest_materializations(
            context.instance, self.asset_key, [day.isoformat() for day in days]
        )
        with (
            working_on(f"{self.asset}_checks", days, warehouse.location),
            warehouse.open() as wh,
        ):
            held = set(wh.rows_per_date_and_category(RAW, days[0], days[-1])["auction_date"])
            for day, outcomes in self.judge(context, wh, days, settings):
                for check in selected:
                    outcome = outcomes[check]
                    if outcome.passed and day not in held and not check.judges_empty_dates:
                        outcome = Outcome(True, f"{no_auction(day)}: nothing to check")
                    if not outcome.passed and check.fails_run:
                        failing.append((day, outcome.metadata.get("cause", outcome.summary)))
                    if not outcome.passed:
                        log = context.log.error if check.severity == ERROR else context.log.warning
                        log(f"{self.asset} {day}: check {check.name} failed: {outcome.summary}")
                    yield dg.AssetCheckEvaluation(
                        asset_key=self.asset_key,
                        check_name=check.name,
                        passed=outcome.passed,
                        severity=dg.AssetCheckSeverity(check.severity),
                        metadata=_metadata(outcome),
                        description=outcome.summary,
                        partition=day.isoformat(),
                        target_materialization_data=targets.get(day.isoformat()),
                    )


def check_settings(
    quarantine_threshold: QuarantineThreshold, price_index: PriceIndexSettings
) -> CheckSettings:
    return CheckSettings(quarantine_threshold.max_rejected_share, price_index.base())


def not_loaded(failing: list[tuple[date, str]], location: str) -> dg.Failure:
    """The run's failure for the dates a check that fails the run (auction_date_loaded) failed."""
    return dg.Failure(
        f"{len(failing)} auction date{'s' if len(failing) > 1 else ''} not loaded "
        f"into the warehouse {location}: "
        + "; ".join(f"{day} ({summary})" for day, summary in failing)
    )


def build_asset_checks(
    judged: AssetChecks, additional_deps: tuple[str, ...] = ()
) -> dg.AssetChecksDefinition:
    """One step that judges the asset's checks for each auction date of its run."""
    asset = judged.asset
    specs = {
        check: dg.AssetCheckSpec(
            check.name,
            asset=asset,
            description=check.full_description,
            blocking=check.blocking,
            partitions_def=auction_date_partitions,
            additional_deps=list(additional_deps),
        )
        for check in judged.checks
    }

    @dg.multi_asset_check(
        name=f"{asset}_checks",
        specs=list(specs.values()),
        can_subset=True,
        description=f"The checks of {asset}, judged per auction date on the stored table.",
    )
    def _checks(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        quarantine_threshold: QuarantineThreshold,
        price_index: PriceIndexSettings,
    ):
        if not (context.has_partition_key or context.has_partition_key_range):
            raise dg.Failure(
                f"{asset}: no auction date chosen. These checks judge one date at a time: launch "
                "flower_checks_job (or materialize the asset) for a date or a range of dates from "
                "its Partitions tab."
            )
        days = auction_dates(context)
        selected = [
            check for check, spec in specs.items() if spec.key in context.selected_asset_check_keys
        ]
        failing: list[tuple[date, str]] = []
        settings = check_settings(quarantine_threshold, price_index)
        yield from judged.evaluate(context, warehouse, settings, days, selected, failing)
        # The check outputs: they order downstream steps after blocking checks (per-date
        # blocking itself is in the assets' upload-log gate).
        for check in selected:
            yield dg.Output(None, output_name=specs[check].get_python_identifier())
        if failing:
            # After every evaluation and output: the run ends failed, nothing else is held back.
            raise not_loaded(failing, warehouse.location)

    return _checks


def build_judge_op(judged: AssetChecks) -> dg.OpDefinition:
    """An op of flower_checks_job: every check of one asset, for the run's dates."""

    @dg.op(
        name=f"judge_{judged.asset}",
        out={},
        description=f"Judge every check of {judged.asset} again for the run's auction dates, on "
        "what the warehouse stores: nothing is fetched or written.",
    )
    def _judge(
        context: dg.OpExecutionContext,
        warehouse: WarehouseResource,
        quarantine_threshold: QuarantineThreshold,
        price_index: PriceIndexSettings,
    ) -> Iterator[dg.AssetCheckEvaluation]:
        if not context.has_partitions:
            raise dg.Failure(
                f"judge_{judged.asset}: no auction date chosen. Launch flower_checks_job for a "
                "date or a range: Partitions tab, Launch backfill…, or its Launchpad."
            )
        # One date (dagster/partition) or a range (dagster/asset_partition_range_start/end).
        days = auction_dates(context)
        failing: list[tuple[date, str]] = []
        settings = check_settings(quarantine_threshold, price_index)
        # Yielded, not logged with context.log_event: Dagster flushes logged events only at the
        # op's next yield or its end, so the failure below would drop them.
        yield from judged.evaluate(context, warehouse, settings, days, list(judged.checks), failing)
        if failing:
            raise not_loaded(failing, warehouse.location)

    return _judge


def build_checks_job(judged: list[AssetChecks]) -> dg.JobDefinition:
    """flower_checks_job: every asset's checks judged again for chosen dates, writing nothing."""

    @dg.job(
        name="flower_checks_job",
        partitions_def=auction_date_partitions,
        description="Judge every check of the auction and market tables again for the chosen "
        "auction dates, on what the warehouse stores: nothing is fetched or written. Pick the "
        "dates on its Partitions tab (Launch backfill…, tick Completed to re-judge a date "
        "again) or in its Launchpad. That tab counts only this job's own runs: a date it never "
        "re-judged shows Missing there, though its checks ran when it was loaded (each asset's "
        "Checks tab shows every date's result).",
    )
    def flower_checks_job() -> None:
        for each in judged:
            build_judge_op(each)()

    return flower_checks_job
