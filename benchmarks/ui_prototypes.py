"""What-ifs for the UI benchmark (`ui_queries.py --prototype NAME`), none of them adopted.

Each is an event log storage class for the webserver: `ui_queries.py` gives the webserver a copy
of the loaded instance's dagster.yaml that names it (same storage files), with benchmarks/ on
PYTHONPATH. Both replace `get_asset_check_state`, which is what a check's `partitionStatuses`
resolves to (`AssetCheckState.gen` -> `event_log_storage.get_asset_check_state`).

`cached_check_state`: each check's `AssetCheckState` is kept between requests and only newer
events are applied to it. Dagster's design allows exactly that: `get_asset_check_state` starts
from `get_checkpointed_asset_check_state` and applies the check executions and
materializations after the state's `latest_storage_id` (`bulk_update_asset_check_state`); but
the open-source SQL storages return an empty state there, so every request recomputes every
check over its whole history. Kept in the process here: the first request after a start still
pays the full computation.

`batched_check_state`: no cache; the state is computed from scratch as Dagster does, except that
the per-date records are applied with one subset per status built from all their dates, instead
of Dagster's validation, one-key subset and five subset operations per date
(`asset_check_state._process_partition_records`). Equivalent because the records hold one row
per date (the latest execution per partition): operations on different dates commute.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence

from dagster._core.asset_graph_view.serializable_entity_subset import SerializableEntitySubset
from dagster._core.definitions.asset_key import AssetCheckKey
from dagster._core.definitions.partitions.definition.partitions_definition import (
    PartitionsDefinition,
)
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
    AssetCheckExecutionResolvedStatus,
    AssetCheckPartitionInfo,
)
from dagster._core.storage.asset_check_state import (
    AssetCheckState,
    _process_run_statuses,
    bulk_update_asset_check_state,
)
from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter

from flower_assets.instance_storage import PooledSqliteEventLogStorage

CheckKeys = Sequence[tuple[AssetCheckKey, PartitionsDefinition | None]]


class CachedCheckStateEventLogStorage(PooledSqliteEventLogStorage):
    """The repo's event log, with check states kept between requests in this process."""

    def __init__(self, base_dir: str, inst_data=None):
        self._check_states: dict[tuple[AssetCheckKey, PartitionsDefinition | None], AssetCheckState]
        self._check_states = {}
        self._check_states_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    def get_asset_check_state(self, keys: CheckKeys) -> Mapping[AssetCheckKey, AssetCheckState]:
        keys = list(keys)
        with self._check_states_lock:
            initial = {
                key: self._check_states.get((key, partitions_def), AssetCheckState.empty())
                for key, partitions_def in keys
            }
        states = bulk_update_asset_check_state(self._instance, keys, initial_states=initial)
        with self._check_states_lock:
            for key, partitions_def in keys:
                self._check_states[(key, partitions_def)] = states[key]
        return states


def _batched_partition_records(
    key: AssetCheckKey,
    partitions_def: PartitionsDefinition,
    state: AssetCheckState,
    infos: Sequence[AssetCheckPartitionInfo],
) -> tuple[dict, dict]:
    """`_process_partition_records` with one subset operation per status, not per date."""
    Status = AssetCheckExecutionResolvedStatus
    valid = set(partitions_def.get_partition_keys())
    added: dict[AssetCheckExecutionResolvedStatus, list[str]] = defaultdict(list)
    cleared: list[str] = []
    runs: dict[str, list[str]] = defaultdict(list)
    for info in infos:
        if info.partition_key not in valid:
            continue
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.PLANNED:
            added[Status.IN_PROGRESS].append(info.partition_key)
            runs[info.latest_planned_run_id].append(info.partition_key)
        elif info.latest_execution_status in (
            AssetCheckExecutionRecordStatus.SUCCEEDED,
            AssetCheckExecutionRecordStatus.FAILED,
        ):
            if not info.is_current:
                cleared.append(info.partition_key)
            elif info.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED:
                added[Status.SUCCEEDED].append(info.partition_key)
            else:
                added[Status.FAILED].append(info.partition_key)

    def subset(partition_keys: list[str]) -> SerializableEntitySubset:
        value = partitions_def.subset_with_partition_keys(partition_keys)
        return SerializableEntitySubset(key=key, value=value)

    empty = SerializableEntitySubset.empty(key, partitions_def)
    removed = subset(cleared)
    subsets = {}
    for status in Status:
        current = state.subsets.get(status, empty)
        if added[status]:
            current = current.compute_union(subset(added[status]))
        subsets[status] = current.compute_difference(removed) if cleared else current
    in_progress = dict(state.in_progress_runs)
    for run_id, partition_keys in runs.items():
        in_progress[run_id] = in_progress.get(run_id, empty).compute_union(subset(partition_keys))
    return subsets, in_progress


def batched_check_state(
    key: AssetCheckKey,
    partitions_def: PartitionsDefinition,
    infos: Sequence[AssetCheckPartitionInfo],
    run_statuses: Mapping,
) -> AssetCheckState:
    """`AssetCheckState.empty().with_updates(key, partitions_def, infos, run_statuses)`, batched.

    `infos` must hold one record per date, as `get_asset_check_partition_info` returns them.
    """
    subsets, in_progress = _batched_partition_records(
        key, partitions_def, AssetCheckState.empty(), infos
    )
    subsets, in_progress = _process_run_statuses(
        key, partitions_def, subsets, in_progress, run_statuses
    )
    return AssetCheckState(
        latest_storage_id=max(
            (
                max(i.latest_check_event_storage_id, i.latest_materialization_storage_id or 0)
                for i in infos
            ),
            default=0,
        ),
        subsets=subsets,
        in_progress_runs=in_progress,
    )


class BatchedCheckStateEventLogStorage(PooledSqliteEventLogStorage):
    """The repo's event log, computing check states as Dagster does but in one batch per status."""

    def get_asset_check_state(self, keys: CheckKeys) -> Mapping[AssetCheckKey, AssetCheckState]:
        keys = list(keys)
        if any(partitions_def is None for _, partitions_def in keys):
            return super().get_asset_check_state(keys)
        # As bulk_update_asset_check_state from empty states: one fetch, runs looked up at once.
        infos = self.get_asset_check_partition_info([key for key, _ in keys], after_storage_id=0)
        by_key: dict[AssetCheckKey, list[AssetCheckPartitionInfo]] = defaultdict(list)
        run_ids = set()
        for info in infos:
            by_key[info.check_key].append(info)
            if info.latest_execution_status == AssetCheckExecutionRecordStatus.PLANNED:
                run_ids.add(info.latest_planned_run_id)
        runs = (
            self._instance.get_runs(
                filters=RunsFilter(run_ids=list(run_ids), statuses=FINISHED_STATUSES)
            )
            if run_ids
            else []
        )
        run_statuses = {run.run_id: run.status for run in runs}
        states = {}
        for key, partitions_def in keys:
            records = by_key[key]
            if len({info.partition_key for info in records}) != len(records):
                states[key] = super().get_asset_check_state([(key, partitions_def)])[key]
                continue
            states[key] = batched_check_state(key, partitions_def, records, run_statuses)
        return states


# name -> (module, class) of the event log storage the webserver is given
PROTOTYPES = {
    "cached_check_state": ("ui_prototypes", "CachedCheckStateEventLogStorage"),
    "batched_check_state": ("ui_prototypes", "BatchedCheckStateEventLogStorage"),
}
