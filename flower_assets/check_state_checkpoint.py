"""Asset-check state checkpointed in the instance's own database (issue #19).

A partitioned check's `partitionStatuses` in the UI resolves to
`event_log_storage.get_asset_check_state`. Dagster's open-source SQL storages rebuild that
`AssetCheckState` from every partition record on every request (~140 µs per date per check; at
full history ~6 s for the checks page). This mixin keeps, per check, a checkpoint of the state in
a table of the event log's own database (`flower_asset_check_state`), and a request folds in only
the partitions that changed since. docs/check-state-checkpoint.md explains the design; in short:

- What is stored, per check: the dates whose latest evaluation passed / failed and is current,
  the dates whose latest execution is only planned (by run), the invalid partition keys seen,
  and what the checkpoint covers: the event log and `asset_check_executions` ids it has read up
  to (`mark`), the ids below which every change is folded in (`stable`), the runs that could
  still update their rows in place (`open_runs`), and fingerprints of what it was computed from.
  Run outcomes (skipped, execution failed, in progress) are resolved at every request from the
  run storage, exactly as Dagster does, never stored.
- A request folds in the partitions of: execution rows inserted after `stable`, rows of runs
  that were unfinished at the last checkpoint or are now or logged check events after `stable`
  (in-place updates: planned -> evaluated, a step retry), materializations after `stable`, and
  invalid keys that became valid. For those partitions it reads Dagster's own per-partition
  record (`get_asset_check_partition_info(partition_keys=...)`) and replaces what the
  checkpoint held for them: a partition's state is a function of its latest record and the
  status of that record's run only (Dagster's `with_updates`, applied to a stored state, is not:
  it never clears a date's earlier status, so `get_checkpointed_asset_check_state` alone cannot
  be used).
- Everything else invalidates: a different Dagster version, partitions definition, format;
  fewer rows or other row ids at or below the mark (deleted runs, wiped assets, `wipe`), a mark
  row that changed (SQLite reuses the ids of deleted tail rows), another wipe timestamp or
  unpartitioned latest materialization of the asset, a changed record without partition. Then
  the state is rebuilt from every record (batched: one subset per status). Under an earlier
  "now" than the checkpoint saw, Dagster answers and the checkpoint is left alone.
- Writes are one statement per check, a compare-and-set on the row's version, carrying the
  state with what it covers: no writer leaves a checkpoint that covers more or less than it
  says. Its fingerprints were read before its records, so a deletion racing the request is seen
  by the next one.

Both of the repo's event log classes use it: `PooledSqliteEventLogStorage` (SQLite) and
`CheckpointedPostgresEventLogStorage` (PostgreSQL), which differ only in `_mark_token` /
`_mark_settled`: when all ids up to a mark are final. SQLite commits one writer at a time, so
at once; PostgreSQL assigns ids before commit, so once the transactions that held a row lock on
the two tables when the mark was read are over (`pg_locks`).

It relies on Dagster internals (the tables' schema, `AssetCheckState`, `AssetCheckPartitionInfo`,
the partitions subsets, `_get_latest_unpartitioned_materialization_storage_ids`):
`flower_assets_tests/test_check_state_checkpoint.py` pins each of them and checks the state
against Dagster's own full computation on randomized histories, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import dagster
import sqlalchemy as sa
from dagster._core.asset_graph_view.serializable_entity_subset import SerializableEntitySubset
from dagster._core.definitions.asset_key import AssetCheckKey, AssetKey
from dagster._core.definitions.partitions.definition import (
    PartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.partitions.snap.snap import PartitionsSnap
from dagster._core.definitions.partitions.subset import PartitionsSubset, TimeWindowPartitionsSubset
from dagster._core.definitions.partitions.utils.time_window import TimeWindow
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
    AssetCheckExecutionResolvedStatus,
    AssetCheckPartitionInfo,
)
from dagster._core.storage.asset_check_state import AssetCheckState
from dagster._core.storage.dagster_run import (
    FINISHED_STATUSES,
    NOT_FINISHED_STATUSES,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)
from dagster._serdes import deserialize_value, serialize_value

log = logging.getLogger(__name__)

CheckKeys = Sequence[tuple[AssetCheckKey, PartitionsDefinition | None]]
Status = AssetCheckExecutionResolvedStatus
Record = AssetCheckExecutionRecordStatus

# Bump when the stored body changes meaning: every checkpoint is then rebuilt once.
FORMAT = 1

CHECKPOINTS = sa.Table(
    "flower_asset_check_state",
    sa.MetaData(),
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("check_name", sa.Text, primary_key=True),
    # Compare-and-set: a writer updates the row only if it still has the version it read.
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

EVENTS = SqlEventLogStorageTable
EXECUTIONS = AssetCheckExecutionsTable
CHECK_EVENT_TYPES = [
    DagsterEventType.ASSET_CHECK_EVALUATION.value,
    DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
]
MATERIALIZATION = DagsterEventType.ASSET_MATERIALIZATION.value


class Unsure(Exception):
    """Something the checkpoint does not model: Dagster's own computation answers instead."""


def checkpointable(partitions_def: PartitionsDefinition | None) -> bool:
    """Checks whose valid partitions depend only on the definition and the clock, never on the
    instance: time windows (valid keys only grow with time) and static keys. Unpartitioned checks
    cost one record; dynamic and multi-dimensional ones are left to Dagster."""
    return isinstance(partitions_def, (TimeWindowPartitionsDefinition, StaticPartitionsDefinition))


@dataclass(frozen=True)
class Mark:
    """The highest event log and execution ids read, and what says when they are final."""

    event: int
    execution: int
    token: object = None

    def ids(self) -> dict[str, int]:
        return {"event": self.event, "execution": self.execution}


@dataclass
class Checkpoint:
    """One check's stored state: what each partition's latest record says, and what it covers."""

    partitions: str  # fingerprint of the partitions definition
    last_window_end: float | None  # time windows: the end of the last partition then
    mark: dict[str, int]
    anchors: dict[str, list]
    stable: dict[str, int]
    candidate: dict | None
    fingerprint: dict[str, list]
    open_runs: list[str]
    dropped: list[str]
    latest_storage_id: int
    succeeded: PartitionsSubset
    failed: PartitionsSubset
    planned: dict[str, PartitionsSubset] = field(default_factory=dict)

    def dump(self) -> str:
        body = {
            "format": FORMAT,
            "dagster": dagster.__version__,
            "partitions": self.partitions,
            "last_window_end": self.last_window_end,
            "mark": self.mark,
            "anchors": self.anchors,
            "stable": self.stable,
            "candidate": self.candidate,
            "fingerprint": self.fingerprint,
            "open_runs": sorted(self.open_runs),
            "dropped": sorted(self.dropped),
            "latest_storage_id": self.latest_storage_id,
            "succeeded": _dump_subset(self.succeeded),
            "failed": _dump_subset(self.failed),
            "planned": {run: _dump_subset(s) for run, s in sorted(self.planned.items())},
        }
        return json.dumps(body, sort_keys=True)

    @classmethod
    def load(cls, text: str, keys: Partitions) -> Checkpoint | None:
        """The stored checkpoint, or None when it was written for another format, Dagster
        version or partitions definition."""
        body = json.loads(text)
        if (
            body.get("format") != FORMAT
            or body.get("dagster") != dagster.__version__
            or body.get("partitions") != keys.fingerprint
        ):
            return None
        return cls(
            partitions=body["partitions"],
            last_window_end=body["last_window_end"],
            mark=body["mark"],
            anchors=body["anchors"],
            stable=body["stable"],
            candidate=body["candidate"],
            fingerprint=body["fingerprint"],
            open_runs=body["open_runs"],
            dropped=body["dropped"],
            latest_storage_id=body["latest_storage_id"],
            succeeded=keys.rebind(_load_subset(body["succeeded"])),
            failed=keys.rebind(_load_subset(body["failed"])),
            planned={run: keys.rebind(_load_subset(s)) for run, s in body["planned"].items()},
        )

    def same_state(self, other: Checkpoint) -> bool:
        return (
            self.succeeded == other.succeeded
            and self.failed == other.failed
            and self.planned == other.planned
            and sorted(self.dropped) == sorted(other.dropped)
            and self.latest_storage_id == other.latest_storage_id
        )


def _dump_subset(subset: PartitionsSubset) -> str:
    return serialize_value(subset.to_serializable_subset())


def _load_subset(text: str) -> PartitionsSubset:
    return deserialize_value(text, PartitionsSubset)


# Canonical partition keys per (definition, last window end), shared by the requests of a process.
_CANONICAL: dict[tuple[str, float | None], dict[str, int]] = {}
_CANONICAL_LOCK = threading.Lock()
# Above this many keys a subset is built from runs of consecutive canonical keys (one window per
# run) instead of Dagster's per-key `subset_with_partition_keys` (~30 µs a key).
FAST_SUBSET_MIN_KEYS = 64


class Partitions:
    """The caller's partitions definition, in the caller's partition loading context (the
    webserver fixes "now" per request): which keys are valid, and subsets of them."""

    def __init__(self, partitions_def: PartitionsDefinition) -> None:
        self.partitions_def = partitions_def
        snap = serialize_value(PartitionsSnap.from_def(partitions_def))
        self.fingerprint = hashlib.sha256(snap.encode()).hexdigest()[:32]
        self.time_windows = isinstance(partitions_def, TimeWindowPartitionsDefinition)
        if self.time_windows:
            last = partitions_def.get_last_partition_window()
            self.last_window_end = last.end.timestamp() if last else None
        else:
            self.last_window_end = None

    def not_earlier_than(self, checkpoint: Checkpoint) -> bool:
        """Keys valid when the checkpoint was built are still valid (time windows only grow)."""
        if not self.time_windows or checkpoint.last_window_end is None:
            return True
        return self.last_window_end is not None and self.last_window_end >= (
            checkpoint.last_window_end
        )

    def _canonical(self) -> dict[str, int]:
        cache_key = (self.fingerprint, self.last_window_end)
        with _CANONICAL_LOCK:
            index = _CANONICAL.get(cache_key)
        if index is None:
            keys = self.partitions_def.get_partition_keys()
            index = {key: position for position, key in enumerate(keys)}
            with _CANONICAL_LOCK:
                if len(_CANONICAL) > 64:
                    _CANONICAL.clear()
                _CANONICAL[cache_key] = index
        return index

    def valid(self, keys: Collection[str]) -> set[str]:
        """The keys Dagster counts (`_valid_partition_key`: `has_partition_key`)."""
        if len(keys) < FAST_SUBSET_MIN_KEYS:
            return {key for key in keys if self.partitions_def.has_partition_key(key)}
        index = self._canonical()
        valid = {key for key in keys if key in index}
        for key in set(keys) - valid:
            if self.partitions_def.has_partition_key(key):
                raise Unsure(f"partition key {key!r} is valid but not canonical")
        return valid

    def subset(self, keys: Collection[str]) -> PartitionsSubset:
        """`subset_with_partition_keys(keys)` of valid keys, equal to Dagster's per-key unions."""
        definition = self.partitions_def
        if (
            not self.time_windows
            or len(keys) < FAST_SUBSET_MIN_KEYS
            or definition.exclusions  # windows would merge across excluded times: leave it
        ):
            return definition.subset_with_partition_keys(list(keys))
        index = self._canonical()
        ordered = list(index)
        positions = sorted(index[key] for key in keys)
        windows = []
        first = previous = positions[0]
        for position in [*positions[1:], None]:
            if position is not None and position == previous + 1:
                previous = position
                continue
            start = definition.time_window_for_partition_key(ordered[first]).start
            end = definition.time_window_for_partition_key(ordered[previous]).end
            windows.append(TimeWindow(start, end))
            if position is not None:
                first = previous = position
        return TimeWindowPartitionsSubset(definition, len(positions), windows)

    def empty(self) -> PartitionsSubset:
        return self.partitions_def.empty_subset()

    def rebind(self, subset: PartitionsSubset) -> PartitionsSubset:
        """A stored subset, on the caller's definition object (equal, maybe of another class)."""
        if isinstance(subset, TimeWindowPartitionsSubset):
            return subset.with_partitions_def(self.partitions_def)
        return subset


@dataclass
class Request:
    """One check of one request: what was read about it, in order."""

    key: AssetCheckKey
    keys: Partitions
    version: int = 0  # of the stored row, 0 when there is none
    base: Checkpoint | None = None  # the stored checkpoint, if still valid
    fingerprint_before: dict | None = None
    changed: set[str] = field(default_factory=set)
    rebuild: bool = False
    candidate_settled: bool = False
    result: Checkpoint | None = None


class CheckpointedCheckState:
    """Mixin for a Dagster `SqlEventLogStorage` subclass: `get_asset_check_state` from a
    checkpoint in the event log's database. Put it before the storage class in the bases."""

    # "fallback": an unexpected error in the checkpoint answers with Dagster's own computation
    # (and a warning); the tests set "raise".
    CHECKPOINT_ERRORS = "fallback"
    # How long a request waits for ids up to its mark to be final before folding (PostgreSQL).
    SETTLE_WAIT_S = 0.2
    REBUILD_SETTLE_WAIT_S = 2.0
    # A checkpoint is rewritten without changes once the ids it would probe span this many.
    MAX_PROBE_SPAN = 20_000
    # More changed partitions than this: read every record of the check (one query).
    MAX_FOLD_KEYS = 2_000
    # A run failed or canceled this recently may still be writing (marked so from outside): its
    # rows are read again at every request until then.
    RECENTLY_FINISHED_S = 120

    # ---- the two hooks a backend overrides ------------------------------------------------

    def _mark_token(self, conn: sa.Connection) -> object:
        """Read right after the mark: what `_mark_settled` needs. SQLite: nothing."""
        return None

    def _mark_settled(self, token: object) -> bool:
        """Every id up to the mark is final (committed or never will be)."""
        return True

    @property
    def checkpoint_stats(self) -> Counter:
        """Per check and request of this storage object: `rebuilt`, `folded` (changed partitions
        read), `unchanged`, `written` checkpoints; `unsure` (answered by Dagster in full)."""
        return self.__dict__.setdefault("_flower_checkpoint_stats", Counter())

    # ---- Dagster's entry point ---------------------------------------------------------------

    def get_asset_check_state(self, keys: CheckKeys) -> Mapping[AssetCheckKey, AssetCheckState]:
        keys = list(dict(keys).items())
        ours = [(key, definition) for key, definition in keys if checkpointable(definition)]
        if not ours or not self._checkpoint_table_ready():
            return super().get_asset_check_state(keys)  # type: ignore[misc]
        others = [(key, definition) for key, definition in keys if not checkpointable(definition)]
        states = dict(super().get_asset_check_state(others)) if others else {}  # type: ignore[misc]
        try:
            states.update(self._checkpointed_states(ours))
        except Unsure as unsure:
            log.debug("asset check state computed in full: %s", unsure)
            self.checkpoint_stats["unsure"] += len(ours)
            states.update(super().get_asset_check_state(ours))  # type: ignore[misc]
        except Exception:
            if self.CHECKPOINT_ERRORS == "raise":
                raise
            log.warning("asset check state checkpoint failed; computing it in full", exc_info=True)
            states.update(super().get_asset_check_state(ours))  # type: ignore[misc]
        return states

    def wipe(self) -> None:
        super().wipe()  # type: ignore[misc]
        if self.has_table(CHECKPOINTS.name):  # type: ignore[attr-defined]
            with self.index_connection() as conn:  # type: ignore[attr-defined]
                conn.execute(CHECKPOINTS.delete())

    def wipe_asset_partitions(self, asset_key: AssetKey, partition_keys: Sequence[str]) -> None:
        # Dagster's SQL storages raise NotImplementedError here (1.13). Should one implement it,
        # its deletions are caught by the fingerprints; dropping the asset's checkpoints as well
        # keeps the rule "when unsure, rebuild" without relying on that.
        super().wipe_asset_partitions(asset_key, partition_keys)  # type: ignore[misc]
        self._drop_checkpoints(asset_key)

    def wipe_asset(self, asset_key: AssetKey) -> None:
        super().wipe_asset(asset_key)  # type: ignore[misc]
        self._drop_checkpoints(asset_key)

    def _drop_checkpoints(self, asset_key: AssetKey) -> None:
        if self._checkpoint_table_ready():
            with self.index_connection() as conn:  # type: ignore[attr-defined]
                conn.execute(
                    CHECKPOINTS.delete().where(CHECKPOINTS.c.asset_key == asset_key.to_string())
                )

    # ---- the table -----------------------------------------------------------------------------

    def _checkpoint_table_ready(self) -> bool:
        ready = self.__dict__.get("_flower_checkpoint_table")
        if ready is None:
            ready = self.has_table(CHECKPOINTS.name)  # type: ignore[attr-defined]
            if not ready and getattr(self, "should_autocreate_tables", True):
                try:
                    with self.index_connection() as conn:  # type: ignore[attr-defined]
                        conn.execute(sa.schema.CreateTable(CHECKPOINTS, if_not_exists=True))
                except sa.exc.DBAPIError:
                    pass  # another process created it at the same time, or we may not
                ready = self.has_table(CHECKPOINTS.name)  # type: ignore[attr-defined]
                if not ready:
                    log.warning(
                        "cannot create %s: asset check states are computed in full",
                        CHECKPOINTS.name,
                    )
            self.__dict__["_flower_checkpoint_table"] = ready
        return ready

    # ---- one request ---------------------------------------------------------------------------

    def _checkpointed_states(self, keys: CheckKeys) -> dict[AssetCheckKey, AssetCheckState]:
        requests = {key: Request(key, Partitions(definition)) for key, definition in keys}
        assets = sorted({key.asset_key for key in requests}, key=lambda k: k.to_string())
        # Fingerprints before data: a change in between is seen at the next request.
        asset_fingerprints = self._asset_fingerprints(assets)
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            mark = self._read_mark(conn)
            stored = self._read_checkpoints(conn, list(requests))
        settled = self._wait_settled(mark, rebuild=len(stored) < len(requests))
        bases = {key: self._load(text, requests[key].keys) for key, (_, text) in stored.items()}
        if any(
            base is not None and not requests[key].keys.not_earlier_than(base)
            for key, base in bases.items()
        ):
            # An earlier "now" than the checkpoint's: it may hold keys that are invalid now.
            raise Unsure("partition loading context earlier than the checkpoint's")
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            anchors = self._read_anchors(conn, [mark.ids()] + [b.mark for b in bases.values() if b])
            fingerprints = self._fingerprints(
                conn, {key: bases.get(key) for key in requests}, mark, asset_fingerprints
            )
            for key, request in requests.items():
                request.version = stored.get(key, (0, ""))[0]
                self._validate(request, bases.get(key), mark, anchors, fingerprints[key])
            # Partitions changed since each checkpoint's `stable`. In-place updates (planned ->
            # evaluated, a step retry) are found through their runs: those open at the last
            # checkpoint or now, or that logged check events after `stable`. A run that finished
            # before its rows are read has written them all (its end event follows its steps').
            folds = [r for r in requests.values() if not r.rebuild]
            lowest = Mark(
                min((r.base.stable["event"] for r in folds), default=mark.event),
                min((r.base.stable["execution"] for r in folds), default=mark.execution),
            )
            new_rows = self._new_execution_rows(conn, folds, lowest, mark)
            check_event_runs = self._check_event_runs(conn, lowest, mark) if folds else set()
            materialized = self._new_materializations(conn, folds, lowest, mark)
        # Runs that may still update their rows: unfinished, or failed / canceled a moment ago
        # (marked so from outside while their process still writes; a success is the run's own
        # last event).
        runs = self._instance  # type: ignore[attr-defined]
        recently = datetime.now(UTC) - timedelta(seconds=self.RECENTLY_FINISHED_S)
        unfinished = set(runs.get_run_ids(filters=RunsFilter(statuses=NOT_FINISHED_STATUSES)))
        ended_from_outside = RunsFilter(
            statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED], updated_after=recently
        )
        unfinished |= set(runs.get_run_ids(filters=ended_from_outside))
        candidates = {r.key: set(r.base.open_runs) | unfinished | check_event_runs for r in folds}
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            run_rows = self._rows_of_runs(conn, candidates)
        for request in folds:
            key = request.key
            request.changed = (
                new_rows.get(key, set()) | run_rows.get(key, set()) | materialized.get(key, set())
            )
            if request.base.dropped and request.keys.last_window_end != (
                request.base.last_window_end
            ):
                # Validity depends on the definition (the same) and on the last partition
                # window: only a later one can make a dropped key valid.
                request.changed |= request.keys.valid(request.base.dropped)
            if None in request.changed:
                # A record without partition: invalid for the check, but Dagster counts its ids
                # in `latest_storage_id`, and a partition filter cannot select it.
                why = "a record without partition"
            elif len(request.changed) > self.MAX_FOLD_KEYS:
                why = "many changed partitions"
            else:
                continue
            request.rebuild, request.base, request.changed = True, None, set()
            self.checkpoint_stats[f"rebuilt: {why}"] += 1

        # Dagster's own per-partition records: all of them for a rebuild, else the changed ones.
        infos: dict[AssetCheckKey, list[AssetCheckPartitionInfo]] = defaultdict(list)
        rebuilds = [key for key, r in requests.items() if r.rebuild]
        if rebuilds:
            for info in self.get_asset_check_partition_info(rebuilds):  # type: ignore[attr-defined]
                infos[info.check_key].append(info)
        changed = {key: r.changed for key, r in requests.items() if r.changed}
        if changed:
            # One read for all: each check keeps the records of its own changed partitions.
            for info in self.get_asset_check_partition_info(  # type: ignore[attr-defined]
                list(changed), partition_keys=sorted(set().union(*changed.values()))
            ):
                if info.partition_key in changed[info.check_key]:
                    infos[info.check_key].append(info)
        for key, request in requests.items():
            outcome = "rebuilt" if request.rebuild else "folded" if request.changed else "unchanged"
            self.checkpoint_stats[outcome] += 1
            request.result = self._fold(request, infos[key])
            self._bookkeep(request, mark, settled, unfinished, anchors)

        # Run outcomes are never stored: resolved now, as Dagster does (`_process_run_statuses`).
        planned_runs = sorted({run for r in requests.values() for run in r.result.planned})
        finished = (
            {
                run.run_id: run.status
                for run in self._instance.get_runs(  # type: ignore[attr-defined]
                    filters=RunsFilter(run_ids=planned_runs, statuses=FINISHED_STATUSES)
                )
            }
            if planned_runs
            else {}
        )
        states = {key: resolve(key, r.keys, r.result, finished) for key, r in requests.items()}

        writes = [r for r in requests.values() if self._worth_writing(r, mark)]
        if writes:
            try:
                self._write(writes, mark, settled, infos, assets)
            except sa.exc.DBAPIError:
                # A database we may only read, or one busy past its timeout: the answer stands,
                # the next request tries again.
                if self.CHECKPOINT_ERRORS == "raise":
                    raise
                self.checkpoint_stats["not written"] += len(writes)
                log.warning("asset check state checkpoint not written", exc_info=True)
        return states

    def _validate(
        self,
        request: Request,
        base: Checkpoint | None,
        mark: Mark,
        anchors: Mapping[str, Mapping[int, list]],
        fingerprint: Mapping[str, dict],
    ) -> None:
        """Keep the stored checkpoint as the request's base, or rebuild (and say why)."""
        request.fingerprint_before = fingerprint["now"]
        if base is None:
            why = "new" if not request.version else "other definition or version"
        elif fingerprint["then"] != base.fingerprint:
            why = "rows deleted, asset wiped or materialized without partition"
        elif base.anchors != _anchors_at(anchors, base.mark):
            why = "ids reused"
        else:
            request.base = base
            # Settled before the probes: they then see every id up to the candidate mark.
            request.candidate_settled = base.candidate is not None and self._mark_settled(
                base.candidate["token"]
            )
            return
        request.rebuild = True
        self.checkpoint_stats[f"rebuilt: {why}"] += 1

    @staticmethod
    def _load(text: str, keys: Partitions) -> Checkpoint | None:
        try:
            return Checkpoint.load(text, keys)
        except Exception:  # unreadable: rebuilt and overwritten
            log.warning("unreadable asset check state checkpoint; rebuilding it", exc_info=True)
            return None

    # ---- reads -----------------------------------------------------------------------------

    def _read_mark(self, conn: sa.Connection) -> Mark:
        event, execution = conn.execute(
            sa.select(
                sa.select(sa.func.max(EVENTS.c.id)).scalar_subquery(),
                sa.select(sa.func.max(EXECUTIONS.c.id)).scalar_subquery(),
            )
        ).one()
        return Mark(int(event or 0), int(execution or 0), self._mark_token(conn))

    def _wait_settled(self, mark: Mark, rebuild: bool) -> bool:
        deadline = time.monotonic() + (
            self.REBUILD_SETTLE_WAIT_S if rebuild else self.SETTLE_WAIT_S
        )
        while not self._mark_settled(mark.token):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _read_checkpoints(
        self, conn: sa.Connection, keys: list[AssetCheckKey]
    ) -> dict[AssetCheckKey, tuple[int, str]]:
        rows = conn.execute(
            sa.select(
                CHECKPOINTS.c.asset_key,
                CHECKPOINTS.c.check_name,
                CHECKPOINTS.c.version,
                CHECKPOINTS.c.body,
            ).where(
                CHECKPOINTS.c.asset_key.in_({key.asset_key.to_string() for key in keys}),
                CHECKPOINTS.c.check_name.in_({key.name for key in keys}),
            )
        )
        wanted = {(key.asset_key.to_string(), key.name): key for key in keys}
        return {
            wanted[(asset, name)]: (int(version), body)
            for asset, name, version, body in rows
            if (asset, name) in wanted
        }

    @staticmethod
    def _read_anchors(conn, marks: Iterable[Mapping[str, int]]) -> dict[str, dict[int, list]]:
        """The rows at the marks' ids: SQLite gives a deleted tail row's id to the next row."""
        marks = list(marks)
        event_ids = sorted({m["event"] for m in marks} - {0})
        execution_ids = sorted({m["execution"] for m in marks} - {0})
        events = conn.execute(
            sa.select(
                EVENTS.c.id, EVENTS.c.run_id, EVENTS.c.dagster_event_type, EVENTS.c.timestamp
            ).where(EVENTS.c.id.in_(event_ids))
        )
        executions = conn.execute(
            sa.select(
                EXECUTIONS.c.id,
                EXECUTIONS.c.asset_key,
                EXECUTIONS.c.check_name,
                EXECUTIONS.c.run_id,
                EXECUTIONS.c.partition,
            ).where(EXECUTIONS.c.id.in_(execution_ids))
        )
        return {
            "event": {row[0]: [str(v) for v in row[1:]] for row in events},
            "execution": {row[0]: [str(v) for v in row[1:]] for row in executions},
        }

    def _asset_fingerprints(self, assets: list[AssetKey]) -> dict[AssetKey, list]:
        """Per asset: its wipe details and the unpartitioned latest materialization that
        Dagster's records count for every partition."""
        unpartitioned = self._get_latest_unpartitioned_materialization_storage_ids(assets)  # type: ignore[attr-defined]
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            details = dict(
                conn.execute(
                    sa.select(AssetKeyTable.c.asset_key, AssetKeyTable.c.asset_details).where(
                        AssetKeyTable.c.asset_key.in_([a.to_string() for a in assets])
                    )
                ).all()
            )
        return {a: [unpartitioned.get(a), details.get(a.to_string())] for a in assets}

    def _fingerprints(
        self,
        conn: sa.Connection,
        checks: Mapping[AssetCheckKey, Checkpoint | None],
        mark: Mark,
        asset_fingerprints: Mapping[AssetKey, list],
    ) -> dict[AssetCheckKey, dict[str, dict]]:
        """Per check, count and sum of its execution ids and of its asset's materialization ids
        at or below the mark (`now`) and at or below its checkpoint's mark (`then`): a deletion
        changes them. One query for the executions and one for the materializations per asset
        and stored mark (the checks of an asset are written together)."""
        groups: dict[tuple[AssetKey, int, int], list[AssetCheckKey]] = defaultdict(list)
        for key, base in checks.items():
            then = base.mark if base is not None else mark.ids()
            groups[(key.asset_key, then["event"], then["execution"])].append(key)
        found: dict[AssetCheckKey, dict[str, dict]] = {}
        for (asset, then_event, then_execution), keys in groups.items():
            executions = self._id_fingerprint(
                conn,
                EXECUTIONS,
                [
                    EXECUTIONS.c.asset_key == asset.to_string(),
                    EXECUTIONS.c.check_name.in_([key.name for key in keys]),
                ],
                mark.execution,
                then_execution,
                group_by=EXECUTIONS.c.check_name,
            )
            materializations = self._id_fingerprint(
                conn,
                EVENTS,
                [
                    EVENTS.c.asset_key == asset.to_string(),
                    EVENTS.c.dagster_event_type == MATERIALIZATION,
                ],
                mark.event,
                then_event,
            )[None]
            for key in keys:
                now, then = executions.get(key.name, ([0, 0], [0, 0]))
                found[key] = {
                    "now": {
                        "executions": now,
                        "materializations": materializations[0],
                        "asset": asset_fingerprints[asset],
                    },
                    "then": {
                        "executions": then,
                        "materializations": materializations[1],
                        "asset": asset_fingerprints[asset],
                    },
                }
        return found

    @staticmethod
    def _id_fingerprint(
        conn, table, where, now: int, then: int, group_by=None
    ) -> dict[object, tuple[list, list]]:
        below_then = sa.case((table.c.id <= then, 1), else_=0)
        aggregates = [
            sa.func.count(table.c.id).filter(table.c.id <= now),
            sa.func.coalesce(sa.func.sum(table.c.id).filter(table.c.id <= now), 0),
            sa.func.coalesce(sa.func.sum(below_then), 0),
            sa.func.coalesce(sa.func.sum(table.c.id * below_then), 0),
        ]
        query = sa.select(*aggregates).where(*where, table.c.id <= max(now, then))
        if group_by is not None:
            query = sa.select(group_by, *aggregates).where(*where, table.c.id <= max(now, then))
            rows = conn.execute(query.group_by(group_by)).all()
        else:
            rows = [(None, *conn.execute(query).one())]
        return {row[0]: ([int(row[1]), int(row[2])], [int(row[3]), int(row[4])]) for row in rows}

    def _new_execution_rows(
        self, conn, folds: list[Request], lowest: Mark, mark: Mark
    ) -> dict[AssetCheckKey, set[str]]:
        """Partitions of execution rows inserted after each checkpoint's `stable`."""
        if not folds:
            return {}
        stable = {r.key: r.base.stable["execution"] for r in folds}
        rows = conn.execute(
            sa.select(
                EXECUTIONS.c.id,
                EXECUTIONS.c.asset_key,
                EXECUTIONS.c.check_name,
                EXECUTIONS.c.partition,
            ).where(
                EXECUTIONS.c.id > lowest.execution,
                EXECUTIONS.c.id <= mark.execution,
                EXECUTIONS.c.asset_key.in_({r.key.asset_key.to_string() for r in folds}),
            )
        )
        found: dict[AssetCheckKey, set[str]] = defaultdict(set)
        by_name = {(k.asset_key.to_string(), k.name): k for k in stable}
        for row_id, asset, name, partition in rows:
            key = by_name.get((asset, name))
            if key is not None and row_id > stable[key]:
                found[key].add(partition)  # None: an evaluation without partition
        return found

    def _check_event_runs(self, conn, lowest: Mark, mark: Mark) -> set[str]:
        """Runs that logged a check event after `stable` (a run marked finished while its
        process still writes: the in-place update is then seen here)."""
        rows = conn.execute(
            sa.select(EVENTS.c.run_id)
            .distinct()
            .where(
                EVENTS.c.dagster_event_type.in_(CHECK_EVENT_TYPES),
                EVENTS.c.id > lowest.event,
                EVENTS.c.id <= mark.event,
            )
        )
        return {run for (run,) in rows if run}

    def _new_materializations(
        self, conn, folds: list[Request], lowest: Mark, mark: Mark
    ) -> dict[AssetCheckKey, set[str]]:
        """Per check: partitions of its asset materialized after its checkpoint's `stable`."""
        if not folds:
            return {}
        rows = conn.execute(
            sa.select(EVENTS.c.id, EVENTS.c.asset_key, EVENTS.c.partition).where(
                EVENTS.c.asset_key.in_({r.key.asset_key.to_string() for r in folds}),
                EVENTS.c.dagster_event_type == MATERIALIZATION,
                EVENTS.c.id > lowest.event,
                EVENTS.c.id <= mark.event,
            )
        ).all()
        found = {}
        for request in folds:
            asset, stable = request.key.asset_key.to_string(), request.base.stable["event"]
            found[request.key] = {
                partition
                for row_id, row_asset, partition in rows
                if row_asset == asset and row_id > stable and partition is not None
            }
        return found

    def _rows_of_runs(
        self, conn, candidates: Mapping[AssetCheckKey, set[str]]
    ) -> dict[AssetCheckKey, set[str]]:
        runs = set().union(*candidates.values()) if candidates else set()
        if not runs:
            return {}
        rows = conn.execute(
            sa.select(
                EXECUTIONS.c.asset_key,
                EXECUTIONS.c.check_name,
                EXECUTIONS.c.run_id,
                EXECUTIONS.c.partition,
            ).where(
                EXECUTIONS.c.asset_key.in_({k.asset_key.to_string() for k in candidates}),
                EXECUTIONS.c.check_name.in_({k.name for k in candidates}),
                EXECUTIONS.c.run_id.in_(sorted(runs)),
            )
        )
        by_name = {(k.asset_key.to_string(), k.name): k for k in candidates}
        found: dict[AssetCheckKey, set[str]] = defaultdict(set)
        for asset, name, run, partition in rows:
            key = by_name.get((asset, name))
            if key is not None and run in candidates[key]:
                found[key].add(partition)  # None: an evaluation without partition
        return found

    # ---- the fold ------------------------------------------------------------------------------

    def _fold(self, request: Request, infos: list[AssetCheckPartitionInfo]) -> Checkpoint:
        """The checkpoint with the changed partitions' records in place of what it held for
        them; from nothing for a rebuild. A partition's state depends on its latest record only."""
        keys = request.keys
        base = request.base
        latest = base.latest_storage_id if base is not None else 0
        for info in infos:
            latest = max(
                latest,
                info.latest_check_event_storage_id,
                info.latest_materialization_storage_id or 0,
            )
        partitioned = [info for info in infos if info.partition_key is not None]
        seen = {info.partition_key for info in partitioned}
        if len(seen) != len(partitioned):
            raise Unsure("more than one record for a partition")
        valid = keys.valid(seen | (request.changed if base is not None else set()))
        succeeded: list[str] = []
        failed: list[str] = []
        planned: dict[str, list[str]] = defaultdict(list)
        for info in partitioned:
            partition = info.partition_key
            if partition not in valid:
                continue
            status = info.latest_execution_status
            if status == Record.PLANNED:
                planned[info.latest_planned_run_id].append(partition)
            elif status == Record.SUCCEEDED and info.is_current:
                succeeded.append(partition)
            elif status == Record.FAILED and info.is_current:
                failed.append(partition)
            # a record not current (a newer materialization) leaves the date unknown

        if base is None:
            result = Checkpoint(
                partitions=keys.fingerprint,
                last_window_end=keys.last_window_end,
                mark={},
                anchors={},
                stable={"event": 0, "execution": 0},
                candidate=None,
                fingerprint={},
                open_runs=[],
                dropped=sorted(seen - valid),
                latest_storage_id=latest,
                succeeded=keys.subset(succeeded),
                failed=keys.subset(failed),
                planned={run: keys.subset(parts) for run, parts in planned.items()},
            )
            return result

        cleared = valid & request.changed
        removed = keys.subset(cleared) if cleared else None

        def update(subset: PartitionsSubset, added: list[str]) -> PartitionsSubset:
            if removed is not None:
                subset = subset - removed
            if added:
                subset = subset | keys.subset(added)
            return subset

        new_planned = {}
        for run in set(base.planned) | set(planned):
            subset = update(base.planned.get(run, keys.empty()), planned.get(run, []))
            if not subset.is_empty:
                new_planned[run] = subset
        dropped = (set(base.dropped) - request.changed) | (seen - valid)
        return replace(
            base,
            last_window_end=keys.last_window_end,
            dropped=sorted(dropped),
            latest_storage_id=latest,
            succeeded=update(base.succeeded, succeeded),
            failed=update(base.failed, failed),
            planned=new_planned,
        )

    def _bookkeep(
        self,
        request: Request,
        mark: Mark,
        settled: bool,
        unfinished: set[str],
        anchors: Mapping[str, Mapping[int, list]],
    ) -> None:
        """What the new checkpoint covers: read up to the mark, every change folded in up to
        `stable`. While ids up to the mark may still change (PostgreSQL, a transaction that took
        an id and has not committed), `stable` stays where it was, or moves to an earlier mark
        that has since become final, and the mark waits as the candidate."""
        base = request.base
        if settled:
            stable, candidate = mark.ids(), None
        else:
            stable = base.stable if base is not None else {"event": 0, "execution": 0}
            if base is not None and request.candidate_settled:
                stable = {name: base.candidate[name] for name in ("event", "execution")}
            candidate = {**mark.ids(), "token": mark.token}
        request.result = replace(
            request.result,
            mark=mark.ids(),
            anchors=_anchors_at(anchors, mark.ids()),
            stable=stable,
            candidate=candidate,
            fingerprint=request.fingerprint_before,
            open_runs=sorted(unfinished),
        )

    def _worth_writing(self, request: Request, mark: Mark) -> bool:
        """A new or rebuilt checkpoint, another state or other open runs; else only to move
        `stable` forward when the ids to probe grew many, or a candidate became final."""
        base, result = request.base, request.result
        if base is None or not result.same_state(base) or result.open_runs != base.open_runs:
            return True
        if request.candidate_settled:
            return True
        span = max(mark.event - base.stable["event"], mark.execution - base.stable["execution"])
        return span > self.MAX_PROBE_SPAN

    # ---- the write -----------------------------------------------------------------------------

    def _write(
        self,
        requests: list[Request],
        mark: Mark,
        settled: bool,
        infos: Mapping[AssetCheckKey, list[AssetCheckPartitionInfo]],
        assets: list[AssetKey],
    ) -> None:
        """Write each checkpoint (compare-and-set on its version) whose records lie at or below
        the mark. Its fingerprints were read before its records: any change after that to the
        rows they count makes the next request rebuild it. Only ids up to the mark that were not
        final yet (PostgreSQL) could enter the records unseen by them: then they are read again
        and the checkpoint is written only if they did not change."""
        writes = [
            request
            for request in requests
            if not any(
                info.latest_check_event_storage_id > mark.event
                or (info.latest_materialization_storage_id or 0) > mark.event
                or (info.latest_target_materialization_storage_id or 0) > mark.event
                for info in infos.get(request.key, [])
            )  # else it folded rows above the mark, which the fingerprints do not count
        ]
        if writes and not settled:
            asset_fingerprints = self._asset_fingerprints(assets)
            with self.index_connection() as conn:  # type: ignore[attr-defined]
                after = self._read_anchors(conn, [mark.ids()])
                fingerprints = self._fingerprints(
                    conn, {r.key: None for r in writes}, mark, asset_fingerprints
                )
            writes = [
                request
                for request in writes
                if fingerprints[request.key]["now"] == request.fingerprint_before
                and _anchors_at(after, mark.ids()) == request.result.anchors
            ]
        if not writes:
            return
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            for request in writes:
                written = conn.execute(_compare_and_set(conn, request)).rowcount
                self.checkpoint_stats["written" if written else "lost"] += 1


def _anchors_at(anchors: Mapping[str, Mapping[int, list]], at: Mapping[str, int]) -> dict:
    return {
        "event": anchors["event"].get(at["event"]) if at.get("event") else None,
        "execution": anchors["execution"].get(at["execution"]) if at.get("execution") else None,
    }


def _compare_and_set(conn: sa.Connection, request: Request):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(CHECKPOINTS).values(
        asset_key=request.key.asset_key.to_string(),
        check_name=request.key.name,
        version=request.version + 1,
        body=request.result.dump(),
        updated_at=time.time(),
    )
    return statement.on_conflict_do_update(
        index_elements=[CHECKPOINTS.c.asset_key, CHECKPOINTS.c.check_name],
        set_={
            "version": statement.excluded.version,
            "body": statement.excluded.body,
            "updated_at": statement.excluded.updated_at,
        },
        where=CHECKPOINTS.c.version == request.version,
    )


def resolve(
    key: AssetCheckKey,
    keys: Partitions,
    checkpoint: Checkpoint,
    finished: Mapping[str, DagsterRunStatus],
) -> AssetCheckState:
    """The `AssetCheckState` Dagster computes: planned dates move to skipped / execution failed
    once their run finished (`_process_run_statuses`), else stay in progress."""
    in_progress, skipped, execution_failed = keys.empty(), keys.empty(), keys.empty()
    in_progress_runs = {}
    for run, subset in checkpoint.planned.items():
        status = finished.get(run)
        if status is None:
            in_progress = in_progress | subset
            in_progress_runs[run] = SerializableEntitySubset(key=key, value=subset)
        elif status == DagsterRunStatus.FAILURE:
            execution_failed = execution_failed | subset
        else:
            skipped = skipped | subset
    values = {
        Status.IN_PROGRESS: in_progress,
        Status.SUCCEEDED: checkpoint.succeeded,
        Status.FAILED: checkpoint.failed,
        Status.SKIPPED: skipped,
        Status.EXECUTION_FAILED: execution_failed,
    }
    return AssetCheckState(
        latest_storage_id=checkpoint.latest_storage_id,
        subsets={
            status: SerializableEntitySubset(key=key, value=values[status]) for status in Status
        },
        in_progress_runs=in_progress_runs,
    )


def refresh(instance, keys: CheckKeys) -> Counter:
    """Bring the checkpoints of `keys` up to date now (one request per asset), e.g. after a
    backfill or a Dagster upgrade, so that no page view pays for it; what was done, counted."""
    storage = instance.event_log_storage
    if not isinstance(storage, CheckpointedCheckState):
        raise TypeError(f"{type(storage).__name__} keeps no asset check state checkpoints")
    by_asset: dict[AssetKey, list] = defaultdict(list)
    for key, definition in keys:
        if checkpointable(definition):
            by_asset[key.asset_key].append((key, definition))
    before = Counter(storage.checkpoint_stats)
    # "Now" fixed for the whole refresh, as the webserver fixes it per request.
    with dagster.partition_loading_context(effective_dt=datetime.now(UTC)):
        for asset_keys in by_asset.values():
            storage.get_asset_check_state(asset_keys)
    return storage.checkpoint_stats - before


def refresh_location(instance) -> Counter:
    """`refresh` for every partitioned check of the code location."""
    from flower_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    return refresh(
        instance, [(key, graph.get(key).partitions_def) for key in graph.asset_check_keys]
    )


def main() -> None:
    """`python -m flower_assets.check_state_checkpoint`: refresh the checkpoints of every
    partitioned check of the code location, on the instance of $DAGSTER_HOME."""
    # As `python -m`, this file runs as __main__: the storage class mixes in the module's class.
    from flower_assets.check_state_checkpoint import refresh_location

    with dagster.DagsterInstance.get() as instance:
        began = time.perf_counter()
        done = refresh_location(instance)
        print(
            f"asset check state checkpoints refreshed in {time.perf_counter() - began:.2f} s: "
            + ", ".join(f"{name} {count}" for name, count in sorted(done.items()))
        )


if __name__ == "__main__":
    main()
