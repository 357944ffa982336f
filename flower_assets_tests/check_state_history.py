"""Asset check histories written straight into a Dagster instance, as runs write them.

A run of a partitioned asset with partitioned checks stores, through the instance
(`report_dagster_event`, so the same `store_event` path and run status updates as a real run):
one ASSET_CHECK_EVALUATION_PLANNED per check for its partitions (one `asset_check_executions`
row per partition, PLANNED), then per partition an ASSET_MATERIALIZATION and an
ASSET_CHECK_EVALUATION that targets it (the planned row updated in place), then the run's end.
Building the events takes three Dagster classes outside the public API (the event payloads);
`test_check_state_checkpoint.py` pins them.

Used by the checkpoint's property tests and by `benchmarks/check_state.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import StepMaterializationData

JOB = "check_history"


class HistoryWriter:
    """Writes runs, materializations, planned and evaluated checks into an instance."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def start_run(self, run_id: str | None = None) -> str:
        run_id = run_id or uuid.uuid4().hex
        self.instance.add_run(
            dg.DagsterRun(job_name=JOB, run_id=run_id, status=dg.DagsterRunStatus.STARTED)
        )
        return run_id

    def finish_run(self, run_id: str, status: dg.DagsterRunStatus) -> None:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        if status == dg.DagsterRunStatus.FAILURE:
            self.instance.report_run_failed(run)
        elif status == dg.DagsterRunStatus.CANCELED:
            self.instance.report_run_canceled(run)
        else:
            self._event(dg.DagsterEventType.RUN_SUCCESS, None, run_id)

    def plan(
        self,
        run_id: str,
        check: dg.AssetCheckKey,
        partitions_def: dg.PartitionsDefinition,
        partition_keys: Sequence[str],
    ) -> None:
        subset = partitions_def.subset_with_partition_keys(list(partition_keys))
        planned = AssetCheckEvaluationPlanned(
            asset_key=check.asset_key,
            check_name=check.name,
            partitions_subset=subset.to_serializable_subset(),
        )
        self._event(dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED, planned, run_id)

    def materialize(self, run_id: str, asset: dg.AssetKey, partition: str | None) -> int:
        """Store a materialization (runless if `run_id` is ""); its storage id."""
        materialization = dg.AssetMaterialization(asset_key=asset, partition=partition)
        if run_id:
            self._event(
                dg.DagsterEventType.ASSET_MATERIALIZATION,
                StepMaterializationData(materialization=materialization),
                run_id,
            )
        else:
            self.instance.report_runless_asset_event(materialization)
        return self.latest_materializations(asset, partition, 1)[0].storage_id

    def latest_materializations(
        self, asset: dg.AssetKey, partition: str | None, limit: int
    ) -> list[dg.EventLogRecord]:
        records_filter = dg.AssetRecordsFilter(
            asset_key=asset, asset_partitions=[partition] if partition is not None else None
        )
        return list(self.instance.fetch_materializations(records_filter, limit=limit).records)

    def evaluate(
        self,
        run_id: str,
        check: dg.AssetCheckKey,
        partition: str | None,
        passed: bool,
        target: dg.EventLogRecord | None,
    ) -> None:
        """Store a check evaluation (runless if `run_id` is "") judging `target`."""
        evaluation = dg.AssetCheckEvaluation(
            asset_key=check.asset_key,
            check_name=check.name,
            passed=passed,
            partition=partition,
            target_materialization_data=(
                AssetCheckEvaluationTargetMaterializationData(
                    storage_id=target.storage_id, run_id=target.run_id, timestamp=target.timestamp
                )
                if target is not None
                else None
            ),
        )
        if run_id:
            self._event(dg.DagsterEventType.ASSET_CHECK_EVALUATION, evaluation, run_id)
        else:
            self.instance.report_runless_asset_event(evaluation)

    def ranged_run(
        self,
        asset: dg.AssetKey,
        checks: Iterable[dg.AssetCheckKey],
        partitions_def: dg.PartitionsDefinition,
        partition_keys: Sequence[str],
        failed: Iterable[tuple[str, str]] = (),
    ) -> str:
        """One run over a range as the platform runs it: planned checks, then per partition a
        materialization and its evaluations (`failed`: (check name, partition) that fail)."""
        checks, failed = list(checks), set(failed)
        run_id = self.start_run()
        for check in checks:
            self.plan(run_id, check, partitions_def, partition_keys)
        for partition in partition_keys:
            self.materialize(run_id, asset, partition)
            target = self.latest_materializations(asset, partition, 1)[0]
            for check in checks:
                passed = (check.name, partition) not in failed
                self.evaluate(run_id, check, partition, passed, target)
        self.finish_run(run_id, dg.DagsterRunStatus.SUCCESS)
        return run_id

    def _event(self, event_type: dg.DagsterEventType, data: object, run_id: str) -> None:
        event = dg.DagsterEvent(
            event_type_value=event_type.value, job_name=JOB, event_specific_data=data
        )
        self.instance.report_dagster_event(event, run_id=run_id)


PRODUCTION_INSTANCE = Path(__file__).resolve().parent.parent / "deploy/postgres/dagster.yaml"


def postgres_overrides(url: str) -> dict:
    """The storages of the production instance file (deploy/postgres/dagster.yaml) on the
    PostgreSQL database `url`, as overrides of a temporary instance."""
    production = yaml.safe_load(PRODUCTION_INSTANCE.read_text(encoding="utf-8"))
    # dagster-postgres needs the psycopg2 driver named (the instance file says why).
    config = {"postgres_url": url.replace("postgresql://", "postgresql+psycopg2://", 1)}
    storages = ("run_storage", "event_log_storage", "schedule_storage")
    return {
        "telemetry": {"enabled": False},
        **{name: {**production[name], "config": config} for name in storages},
    }
