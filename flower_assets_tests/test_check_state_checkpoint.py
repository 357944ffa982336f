"""The asset check state checkpoint (flower_assets/check_state_checkpoint.py, issue #19).

The checkpointed `get_asset_check_state` must answer exactly what Dagster's own full computation
answers (`bulk_update_asset_check_state` from an empty state, what every open-source storage does
on every request): on randomized histories, after every step, on a real instance on SQLite and
on PostgreSQL, and with two instances ("webservers") writing the same checkpoints at once.
The private Dagster names it relies on are pinned at the end.
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import random
import shutil
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from flower_assets import check_state_checkpoint as checkpoint_module
from flower_assets.check_state_checkpoint import CHECKPOINTS, CheckpointedCheckState

from .check_state_history import HistoryWriter, postgres_overrides
from .conftest import REPO

SEEDS_PER_BACKEND = 20
STEPS = 24
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
# Partition keys the histories use: two days before the definition starts (never valid), and
# days after "now" that become valid as the clock advances.
POOL = [(datetime(2023, 12, 30) + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(0, 48)]
STATIC_KEYS = [f"k{i}" for i in range(8)]


# ---- instances --------------------------------------------------------------------------------


def sqlite_overrides(tmp_path: Path) -> dict:
    return {
        "telemetry": {"enabled": False},
        "event_log_storage": {
            "module": "flower_assets.instance_storage",
            "class": "PooledSqliteEventLogStorage",
            "config": {"base_dir": str(tmp_path / "history")},
        },
    }


@pytest.fixture(params=["sqlite", "postgres"])
def overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    if request.param == "sqlite":
        return sqlite_overrides(tmp_path)
    return postgres_overrides(request.getfixturevalue("dagster_postgres_url"))


@pytest.fixture(autouse=True)
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error inside the checkpoint fails the test instead of falling back to Dagster."""
    monkeypatch.setattr(CheckpointedCheckState, "CHECKPOINT_ERRORS", "raise")


def open_instances(tmp_path: Path, overrides: dict, count: int = 2) -> list[dg.DagsterInstance]:
    """`count` instances on the same storage: two webservers, or a webserver and a daemon.

    Each set up as `dagster-webserver` sets up its instance (pooled PostgreSQL connections, with
    its default statement timeout, recycling and overflow)."""
    instances = []
    for _ in range(count):
        instance = dg.DagsterInstance.local_temp(str(tmp_path), overrides=overrides)
        instance.optimize_for_webserver(
            statement_timeout=15_000, pool_recycle=3_600, max_overflow=20
        )
        instances.append(instance)
    return instances


# ---- Dagster's own answer ---------------------------------------------------------------------


def dagsters_state(instance: dg.DagsterInstance, keys) -> dict:
    """What stock Dagster computes: every record folded into an empty state."""
    from dagster._core.storage.asset_check_state import (
        AssetCheckState,
        bulk_update_asset_check_state,
    )

    empty = {key: AssetCheckState.empty() for key, _ in keys}
    return dict(bulk_update_asset_check_state(instance, keys, initial_states=empty))


def readable(state) -> dict:
    """A state as dates per status and per in-progress run, for failure messages."""
    return {
        "subsets": {
            status.value: (type(s.value).__name__, sorted(s.value.get_partition_keys()))
            for status, s in state.subsets.items()
        },
        "in_progress_runs": {
            run: sorted(s.value.get_partition_keys()) for run, s in state.in_progress_runs.items()
        },
        "latest_storage_id": state.latest_storage_id,
    }


def assert_same_states(ours: dict, dagsters: dict, context: str) -> None:
    assert set(ours) == set(dagsters), context
    for key in dagsters:
        if ours[key] != dagsters[key]:
            mine, theirs = readable(ours[key]), readable(dagsters[key])
            assert mine == theirs, f"{key.to_user_string()} {context}"
            # Same dates, different representation: still a difference for Dagster's equality.
            assert ours[key] == dagsters[key], f"{key.to_user_string()} {context}: {mine}"


# ---- randomized histories ---------------------------------------------------------------------


class Scenario:
    """A random history of two assets (daily: two checks; static keys: one check) built step by
    step, with the state requested from random instances between steps."""

    def __init__(self, instances: list[dg.DagsterInstance], rng: random.Random) -> None:
        self.instances = instances
        self.rng = rng
        self.writer = HistoryWriter(instances[0])
        tag = f"h{uuid.uuid4().hex[:10]}"  # histories never share assets (one PostgreSQL database)
        self.daily = dg.AssetKey([tag, "daily"])
        self.static = dg.AssetKey([tag, "static"])
        self.checks = {
            dg.AssetCheckKey(self.daily, "rows"): self.daily,
            dg.AssetCheckKey(self.daily, "dates"): self.daily,
            dg.AssetCheckKey(self.static, "keys"): self.static,
        }
        self.static_def = dg.StaticPartitionsDefinition(STATIC_KEYS[:6])
        self.now = self.latest = datetime(2024, 1, 20, tzinfo=UTC)
        self.open_runs: list[str] = []
        self.finished_runs: list[str] = []
        self.planned: dict[str, list[tuple[dg.AssetCheckKey, str]]] = {}
        self.evaluated: dict[str, list[tuple[dg.AssetCheckKey, str]]] = {}
        self.runless: set[tuple[dg.AssetCheckKey, str]] = set()
        self.rows: dict[str, set[tuple[dg.AssetCheckKey, str]]] = {}
        self.log: list[str] = []

    def definition(self, check: dg.AssetCheckKey) -> dg.PartitionsDefinition:
        return DAILY if self.checks[check] == self.daily else self.static_def

    def keys(self) -> list[tuple[dg.AssetCheckKey, dg.PartitionsDefinition]]:
        return [(check, self.definition(check)) for check in self.checks]

    def pool(self, asset: dg.AssetKey) -> list[str]:
        return POOL if asset == self.daily else STATIC_KEYS

    def valid_keys(self, asset: dg.AssetKey) -> list[str]:
        with dg.partition_loading_context(effective_dt=self.now):
            definition = DAILY if asset == self.daily else self.static_def
            return definition.get_partition_keys()

    # -- the steps --

    def step(self) -> None:
        for _ in range(self.rng.choice([1, 1, 1, 2, 4])):
            action = self.rng.choices(
                [
                    self.start_run,
                    self.plan,
                    self.materialize,
                    self.evaluate,
                    self.retry,
                    self.finish,
                    self.tick,
                    self.wipe,
                    self.wipe_partitions,
                    self.delete_run,
                    self.unpartitioned,
                    self.redefine_static,
                ],
                weights=[6, 8, 10, 14, 3, 5, 4, 1, 1, 1, 1, 1],
            )[0]
            action()
        if self.rng.random() < 0.3:  # a request for some checks only, on any instance
            some = self.rng.sample(self.keys(), self.rng.randint(1, 3))
            with dg.partition_loading_context(effective_dt=self.now):
                self.rng.choice(self.instances).event_log_storage.get_asset_check_state(some)

    def start_run(self) -> None:
        if len(self.open_runs) < 3:
            run = self.writer.start_run()
            self.open_runs.append(run)
            self.log.append(f"start {run[:6]}")

    def _run(self) -> str:
        """An open run, or "" (runless) when there is none or by chance."""
        if not self.open_runs or self.rng.random() < 0.15:
            return ""
        return self.rng.choice(self.open_runs)

    def plan(self) -> None:
        if not self.open_runs:
            return
        run = self.rng.choice(self.open_runs)
        check = self.rng.choice(list(self.checks))
        valid = self.valid_keys(self.checks[check])
        first = self.rng.randrange(len(valid))
        keys = valid[first : first + self.rng.randint(1, 8)]  # a partial range
        # A run plans a check's partition once (unique index on asset, check, run, partition).
        keys = [key for key in keys if (check, key) not in self.rows.setdefault(run, set())]
        if not keys:
            return
        self.rows[run].update((check, key) for key in keys)
        with dg.partition_loading_context(effective_dt=self.now):
            self.writer.plan(run, check, self.definition(check), keys)
        self.planned.setdefault(run, []).extend((check, key) for key in keys)
        self.log.append(f"plan {run[:6]} {check.name} {keys[0]}..{keys[-1]}")

    def materialize(self) -> None:
        run = self._run()
        asset = self.rng.choice([self.daily, self.static])
        for key in self.rng.sample(self.pool(asset), self.rng.randint(1, 3)):
            self.writer.materialize(run, asset, key)
            self.log.append(f"materialize {run[:6] or '-'} {asset.path[-1]} {key}")

    def evaluate(self) -> None:
        run = self._run()
        if run and self.planned.get(run) and self.rng.random() < 0.7:
            check, key = self.rng.choice(self.planned[run])  # the planned row, updated in place
        else:
            check = self.rng.choice(list(self.checks))
            # Now and then an evaluation without partition: invalid for a partitioned check.
            key = self.rng.choice([*self.pool(self.checks[check]), None])
        self._evaluate(run, check, key)

    def retry(self) -> None:
        """A step retried in the same run: its evaluated row is updated again."""
        runs = [run for run in self.open_runs if self.evaluated.get(run)]
        if runs:
            run = self.rng.choice(runs)
            self._evaluate(run, *self.rng.choice(self.evaluated[run]))

    def _evaluate(self, run: str, check: dg.AssetCheckKey, key: str | None) -> None:
        if not run:
            # Dagster stores one runless evaluation per check and partition: a second one
            # breaks the unique index on (asset, check, run, partition) with run "".
            if (check, key) in self.runless:
                return
            self.runless.add((check, key))
        materializations = self.writer.latest_materializations(self.checks[check], key, 2)
        draw = self.rng.random()
        target = (
            materializations[0]
            if materializations and draw < 0.7
            else materializations[-1]
            if materializations and draw < 0.8
            else None
        )
        passed = self.rng.random() < 0.7
        self.writer.evaluate(run, check, key, passed, target)
        if run:
            self.evaluated.setdefault(run, []).append((check, key))
            self.rows.setdefault(run, set()).add((check, key))
        self.log.append(f"evaluate {run[:6] or '-'} {check.name} {key} {passed}")

    def finish(self) -> None:
        if self.open_runs:
            run = self.open_runs.pop(self.rng.randrange(len(self.open_runs)))
            status = self.rng.choice(
                [
                    dg.DagsterRunStatus.SUCCESS,
                    dg.DagsterRunStatus.FAILURE,
                    dg.DagsterRunStatus.CANCELED,
                ]
            )
            self.writer.finish_run(run, status)
            self.finished_runs.append(run)
            self.log.append(f"finish {run[:6]} {status.value}")

    def tick(self) -> None:
        """The webserver's "now": forward, sometimes a day behind for a while (another
        webserver's clock): the checkpoint then leaves the answer to Dagster."""
        if self.rng.random() < 0.2:
            self.now = self.latest - timedelta(days=1)
        else:
            self.latest += timedelta(days=self.rng.choice([1, 1, 2, 4]))
            self.now = self.latest
        self.log.append(f"now {self.now.date()}")

    def wipe(self) -> None:
        asset = self.rng.choice([self.daily, self.static])
        self.instances[0].wipe_assets([asset])
        self.log.append(f"wipe {asset.path[-1]}")

    def wipe_partitions(self) -> None:
        # Dagster's SQL storages do not implement it (1.13): nothing is wiped.
        with pytest.raises(NotImplementedError):
            self.instances[0].wipe_asset_partitions(self.daily, self.rng.sample(POOL, 2))
        self.log.append("wipe partitions (not implemented)")

    def delete_run(self) -> None:
        runs = self.finished_runs + self.open_runs
        if runs:
            run = self.rng.choice(runs)
            self.instances[0].delete_run(run)
            for runs_list in (self.finished_runs, self.open_runs):
                if run in runs_list:
                    runs_list.remove(run)
            self.planned.pop(run, None)
            self.evaluated.pop(run, None)
            self.log.append(f"delete {run[:6]}")

    def unpartitioned(self) -> None:
        """A materialization without partition: Dagster counts it for every partition."""
        self.writer.materialize(self._run(), self.daily, None)
        self.log.append("materialize daily without partition")

    def redefine_static(self) -> None:
        self.static_def = dg.StaticPartitionsDefinition(
            sorted(self.rng.sample(STATIC_KEYS, self.rng.randint(3, 8)))
        )
        self.log.append(f"static keys {self.static_def.get_partition_keys()}")

    # -- the comparison --

    def compare(self, step: int) -> None:
        instance = self.rng.choice(self.instances)
        keys = self.keys()
        with dg.partition_loading_context(effective_dt=self.now):
            ours = dict(instance.event_log_storage.get_asset_check_state(keys))
            dagsters = dagsters_state(instance, keys)
        history = "\n".join(self.log[-12:])
        assert_same_states(ours, dagsters, f"after step {step}; last steps:\n{history}")


def run_history(instances: list[dg.DagsterInstance], seed: int, monkeypatch) -> Scenario:
    rng = random.Random(seed)
    # Some histories take the paths big histories take with few partitions: subsets built from
    # runs of keys, rebuilds for many changed dates; and PostgreSQL's "ids not final yet".
    if rng.random() < 0.4:
        monkeypatch.setattr(checkpoint_module, "FAST_SUBSET_MIN_KEYS", 3)
        monkeypatch.setattr(CheckpointedCheckState, "MAX_FOLD_KEYS", rng.choice([4, 12]))
    if rng.random() < 0.4:
        monkeypatch.setattr(CheckpointedCheckState, "SETTLE_WAIT_S", 0)
        monkeypatch.setattr(CheckpointedCheckState, "REBUILD_SETTLE_WAIT_S", 0)
        for instance in instances:
            storage = instance.event_log_storage
            monkeypatch.setattr(storage, "_mark_settled", lambda _token: rng.random() < 0.5)
    if rng.random() < 0.3:
        monkeypatch.setattr(CheckpointedCheckState, "MAX_PROBE_SPAN", 5)
    scenario = Scenario(instances, rng)
    for step in range(STEPS):
        scenario.step()
        scenario.compare(step)
    return scenario


@pytest.mark.parametrize("seed", range(SEEDS_PER_BACKEND))
def test_the_checkpointed_state_is_dagsters_own_after_every_step(
    seed, overrides, tmp_path, monkeypatch
) -> None:
    instances = open_instances(tmp_path, overrides)
    try:
        scenario = run_history(instances, seed, monkeypatch)
        stats = sum((i.event_log_storage.checkpoint_stats for i in instances), start=Counter())
        # The checkpoint answered, from a stored checkpoint as well as rebuilt ones.
        assert stats["folded"] > 0 and stats["unchanged"] > 0, (stats, scenario.log)
        assert stats["rebuilt"] > 0 and stats["written"] > 0, stats
    finally:
        for instance in instances:
            instance.dispose()


def test_a_pipeline_shaped_history_of_many_dates(overrides, tmp_path) -> None:
    """Ranged runs of 40 dates with failing dates, a re-run of part of them and an unfinished
    run: the shape of a backfill, and the paths a long history takes (subsets from runs of keys)."""
    definition = dg.DailyPartitionsDefinition(start_date="2023-01-01", end_date="2023-05-01")
    asset = dg.AssetKey(["pipeline", uuid.uuid4().hex[:8]])
    checks = [dg.AssetCheckKey(asset, name) for name in ("rows", "dates", "prices")]
    keys = [(check, definition) for check in checks]
    instance, webserver = open_instances(tmp_path, overrides)
    try:
        writer = HistoryWriter(instance)
        dates = definition.get_partition_keys()
        for first in range(0, len(dates), 40):
            failed = {("prices", d) for d in dates[first : first + 40 : 7]}
            writer.ranged_run(asset, checks, definition, dates[first : first + 40], failed)
            assert_same_states(
                dict(webserver.event_log_storage.get_asset_check_state(keys)),
                dagsters_state(instance, keys),
                f"after the run from {dates[first]}",
            )
        writer.ranged_run(asset, checks[:2], definition, dates[50:70])  # prices is now stale
        unfinished = writer.start_run()
        for check in checks:
            writer.plan(unfinished, check, definition, dates[80:110])
        for date in dates[80:90]:
            writer.materialize(unfinished, asset, date)
        for storage in (webserver.event_log_storage, instance.event_log_storage):
            assert_same_states(
                dict(storage.get_asset_check_state(keys)),
                dagsters_state(instance, keys),
                "with a run in progress",
            )
        writer.finish_run(unfinished, dg.DagsterRunStatus.FAILURE)
        ours = dict(webserver.event_log_storage.get_asset_check_state(keys))
        assert_same_states(ours, dagsters_state(instance, keys), "after the run failed")
        failed_dates = (
            ours[checks[0]]
            .subsets[checkpoint_module.Status.EXECUTION_FAILED]
            .value.get_partition_keys()
        )
        assert list(failed_dates) == dates[80:110]
        stats = webserver.event_log_storage.checkpoint_stats
        assert stats["folded"] > 0 and stats["written"] > 0, stats
    finally:
        instance.dispose()
        webserver.dispose()


@pytest.mark.parametrize("batch_size", ["0", "500"])
def test_a_real_run_of_partitioned_checks(overrides, tmp_path, monkeypatch, batch_size) -> None:
    """Planned and evaluated by Dagster's own execution (not written by the tests), with events
    stored one by one and in batches (DAGSTER_EVENT_BATCH_SIZE, as the platform's runs)."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    definition = dg.DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-20")
    name = f"blooms_{uuid.uuid4().hex[:8]}"

    @dg.asset(name=name, partitions_def=definition)
    def blooms() -> None:
        return None

    @dg.asset_check(asset=blooms, partitions_def=definition)
    def counted(context) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=not context.partition_key.endswith("3"))

    keys = [(dg.AssetCheckKey(blooms.key, "counted"), definition)]
    (instance,) = open_instances(tmp_path, overrides, count=1)
    try:
        for day in ("2024-05-02", "2024-05-03", "2024-05-13"):
            result = dg.materialize([blooms, counted], instance=instance, partition_key=day)
            assert result.success
            assert_same_states(
                dict(instance.event_log_storage.get_asset_check_state(keys)),
                dagsters_state(instance, keys),
                f"after {day}",
            )
        dg.materialize([blooms], instance=instance, partition_key="2024-05-02")  # check stale
        state = instance.event_log_storage.get_asset_check_state(keys)[keys[0][0]]
        assert state == dagsters_state(instance, keys)[keys[0][0]]
        status = checkpoint_module.Status
        assert list(state.subsets[status.SUCCEEDED].value.get_partition_keys()) == []
        assert list(state.subsets[status.FAILED].value.get_partition_keys()) == [
            "2024-05-03",
            "2024-05-13",
        ]
    finally:
        instance.dispose()


# ---- several webservers at once ---------------------------------------------------------------


ROUNDS = 4
WRITES_PER_ROUND = 12


def _webserver(ref, overrides, tmp_dir, asset_path, worker, barrier, results) -> None:
    """One process: writes its own runs' events and requests the state, as fast as it can; after
    each round (both processes waiting), compares with Dagster's full computation."""
    CheckpointedCheckState.CHECKPOINT_ERRORS = "raise"
    rng = random.Random(worker)
    definition = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")
    asset = dg.AssetKey(asset_path)
    checks = [dg.AssetCheckKey(asset, "rows"), dg.AssetCheckKey(asset, "dates")]
    keys = [(check, definition) for check in checks]
    with dg.DagsterInstance.local_temp(tmp_dir, overrides=overrides) as instance:
        instance.optimize_for_webserver(
            statement_timeout=15_000, pool_recycle=3_600, max_overflow=20
        )
        writer = HistoryWriter(instance)
        storage = instance.event_log_storage
        dates = definition.get_partition_keys()
        try:
            for round_ in range(ROUNDS):
                run = writer.start_run()
                for check in checks:
                    writer.plan(run, check, definition, rng.sample(dates, 10))
                for _ in range(WRITES_PER_ROUND):
                    date = rng.choice(dates)
                    writer.materialize(run, asset, date)
                    target = writer.latest_materializations(asset, date, 1)[0]
                    writer.evaluate(run, rng.choice(checks), date, rng.random() < 0.7, target)
                    storage.get_asset_check_state(keys)
                outcome = rng.choice([dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE])
                writer.finish_run(run, outcome)
                barrier.wait(120)  # both stopped writing
                ours = dict(storage.get_asset_check_state(keys))
                dagsters = dagsters_state(instance, keys)
                same = all(ours[k] == dagsters[k] for k in dagsters)
                results.put(
                    (
                        worker,
                        round_,
                        same,
                        ""
                        if same
                        else repr(
                            {k.name: (readable(ours[k]), readable(dagsters[k])) for k in dagsters}
                        ),
                    )
                )
                barrier.wait(120)  # both compared before anyone writes again
            results.put((worker, "stats", dict(storage.checkpoint_stats), ""))
        except BaseException as error:  # reported to the parent
            barrier.abort()
            results.put((worker, "error", False, repr(error)))


def test_two_webservers_updating_the_same_checkpoints_stay_correct(overrides, tmp_path) -> None:
    asset_path = ["concurrent", uuid.uuid4().hex[:8]]
    (instance,) = open_instances(tmp_path, overrides, count=1)  # creates the storage
    instance.dispose()
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(2), fork.Queue()
    workers = [
        fork.Process(
            target=_webserver,
            args=(None, overrides, str(tmp_path), asset_path, worker, barrier, results),
        )
        for worker in (1, 2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(300)
    reports = []
    while not results.empty():
        reports.append(results.get())
    errors = [r for r in reports if r[1] == "error"]
    assert not errors, errors
    rounds = [r for r in reports if isinstance(r[1], int)]
    assert len(rounds) == 2 * ROUNDS, reports
    assert all(same for _, _, same, _ in rounds), [r for r in rounds if not r[2]]
    stats = {worker: stats for worker, kind, stats, _ in reports if kind == "stats"}
    # Both wrote checkpoints, folding what the other one wrote in between.
    assert all(s.get("written", 0) > 0 and s.get("folded", 0) > 0 for s in stats.values()), stats
    # And the stored checkpoints are what a third instance now reads without folding anything.
    with dg.DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as third:
        asset = dg.AssetKey(asset_path)
        definition = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")
        keys = [(dg.AssetCheckKey(asset, name), definition) for name in ("rows", "dates")]
        assert_same_states(
            dict(third.event_log_storage.get_asset_check_state(keys)),
            dagsters_state(third, keys),
            "read by a third instance",
        )
        versions = _stored_versions(third, asset)
        assert len(versions) == 2 and min(versions) > 1, versions


def _stored_versions(instance: dg.DagsterInstance, asset: dg.AssetKey) -> list[int]:
    with instance.event_log_storage.index_connection() as conn:
        return [
            version
            for (version,) in conn.execute(
                sa.select(CHECKPOINTS.c.version).where(CHECKPOINTS.c.asset_key == asset.to_string())
            )
        ]


# ---- what the checkpoint relies on ------------------------------------------------------------


def test_a_checkpoint_of_another_format_or_dagster_version_is_rebuilt(overrides, tmp_path) -> None:
    definition = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")
    asset = dg.AssetKey(["versions", uuid.uuid4().hex[:8]])
    check = dg.AssetCheckKey(asset, "rows")
    keys = [(check, definition)]
    (instance,) = open_instances(tmp_path, overrides, count=1)
    try:
        writer = HistoryWriter(instance)
        writer.ranged_run(asset, [check], definition, definition.get_partition_keys()[:10])
        storage = instance.event_log_storage
        storage.get_asset_check_state(keys)
        for body in ('{"dagster": "0.0.1"}', "not json"):
            with storage.index_connection() as conn:
                conn.execute(CHECKPOINTS.update().values(body=body))
            writer.ranged_run(asset, [check], definition, definition.get_partition_keys()[10:12])
            assert_same_states(
                dict(storage.get_asset_check_state(keys)),
                dagsters_state(instance, keys),
                f"after the stored body became {body!r}",
            )
        assert storage.checkpoint_stats["rebuilt: other definition or version"] == 2
        # A check's checkpoint under another partitions definition is rebuilt too, once.
        longer = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")
        for _ in range(2):
            assert_same_states(
                dict(storage.get_asset_check_state([(check, longer)])),
                dagsters_state(instance, [(check, longer)]),
                "under a longer definition",
            )
        assert storage.checkpoint_stats["rebuilt: other definition or version"] == 3
    finally:
        instance.dispose()


def test_deleted_tail_events_whose_ids_come_back_rebuild(tmp_path) -> None:
    """SQLite gives the ids of deleted rows at the end of a table to the next rows: a run
    deleted and run again can take the very ids the checkpoint counted."""
    overrides = sqlite_overrides(tmp_path)
    definition = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")
    asset = dg.AssetKey(["reused", uuid.uuid4().hex[:8]])
    check = dg.AssetCheckKey(asset, "rows")
    keys = [(check, definition)]
    dates = definition.get_partition_keys()
    (instance,) = open_instances(tmp_path, overrides, count=1)
    try:
        writer = HistoryWriter(instance)
        storage = instance.event_log_storage
        writer.ranged_run(asset, [check], definition, dates[:5])
        last = writer.ranged_run(
            asset, [check], definition, dates[5:8], failed={("rows", dates[6])}
        )
        storage.get_asset_check_state(keys)
        highest = storage.get_maximum_record_id()
        instance.delete_run(last)
        writer.ranged_run(asset, [check], definition, dates[5:8])  # passes this time
        assert storage.get_maximum_record_id() == highest  # the same ids again
        assert_same_states(
            dict(storage.get_asset_check_state(keys)),
            dagsters_state(instance, keys),
            "after a tail run was deleted and run again",
        )
        rebuilt = {k: v for k, v in storage.checkpoint_stats.items() if k.startswith("rebuilt:")}
        assert "rebuilt: ids reused" in rebuilt, rebuilt
    finally:
        instance.dispose()


def test_dagsters_incremental_update_does_not_fold_a_stored_state() -> None:
    """Why the checkpoint replaces each changed date instead of handing a stored state to
    Dagster (`get_checkpointed_asset_check_state` + `bulk_update_asset_check_state`): Dagster's
    `with_updates` adds a date's new status without removing its old one. A date planned, then
    evaluated: folded from a stored state it is both in progress and succeeded. If Dagster makes
    this an exact fold one day, this test fails, and the checkpoint could store Dagster's state."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
        AssetCheckPartitionInfo,
    )
    from dagster._core.storage.asset_check_state import AssetCheckState

    definition = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")
    key = dg.AssetCheckKey(dg.AssetKey("a"), "rows")

    def record(status, event_id):
        return AssetCheckPartitionInfo(
            check_key=key,
            partition_key="2024-01-05",
            latest_execution_status=status,
            latest_planned_run_id="run",
            latest_check_event_storage_id=event_id,
            latest_materialization_storage_id=None,
            latest_target_materialization_storage_id=None,
        )

    planned = AssetCheckState.empty().with_updates(
        key, definition, [record(AssetCheckExecutionRecordStatus.PLANNED, 1)], {}
    )
    evaluated = record(AssetCheckExecutionRecordStatus.SUCCEEDED, 2)
    folded = planned.with_updates(key, definition, [evaluated], {})
    from_scratch = AssetCheckState.empty().with_updates(key, definition, [evaluated], {})
    status = checkpoint_module.Status
    assert list(from_scratch.subsets[status.IN_PROGRESS].value.get_partition_keys()) == []
    assert list(folded.subsets[status.IN_PROGRESS].value.get_partition_keys()) == ["2024-01-05"]
    assert list(folded.subsets[status.SUCCEEDED].value.get_partition_keys()) == ["2024-01-05"]


def _digest(obj) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


# Dagster code whose behaviour the checkpoint reproduces or relies on, read in 1.13.27. A change
# fails here: re-read it against docs/check-state-checkpoint.md ("What it relies on"), run the
# property tests, then update the digest.
DAGSTER_SOURCES = {
    # The state itself: per date, the latest record; planned dates resolved by run status.
    ("dagster._core.storage.asset_check_state", None): "0e13988d91224e30",
    # Records: latest execution and latest materialization per date (unpartitioned one included).
    ("SqlEventLogStorage", "get_asset_check_partition_info"): "5a902afc11ce8f23",
    ("SqlEventLogStorage", "_get_asset_check_partition_info_for_key"): "3a6e24b531ccc55e",
    ("SqlEventLogStorage", "_latest_event_ids_by_partition_subquery"): "254ea79e7d041f2a",
    (
        "EventLogStorage",
        "_get_latest_unpartitioned_materialization_storage_ids",
    ): "ba4a62217da3c3f6",
    # Writes: the event row (asset key, partition) first, then its execution row: inserted
    # (planned, runless, unplanned) or updated in place by run, check and partition.
    ("SqlEventLogStorage", "store_event"): "391ced414e9bfecb",
    ("SqlEventLogStorage", "store_asset_check_event"): "6d148295fa69bb45",
    ("SqlEventLogStorage", "_store_asset_check_evaluation_planned"): "bbecef7ab5ce9d01",
    ("SqlEventLogStorage", "_store_runless_asset_check_evaluation"): "6f98e740f38ae735",
    ("SqlEventLogStorage", "_update_asset_check_evaluation"): "961fd6041447b07a",
    ("PostgresEventLogStorage", "store_event"): "4a2e37e5871bf2c8",
    # Deletions, all caught by the fingerprints (and wipe clears the checkpoints).
    ("SqlEventLogStorage", "wipe_asset"): "1805a043773464be",
    ("SqlEventLogStorage", "wipe_asset_partitions"): "a3fab7467b64ca31",
    ("SqlEventLogStorage", "delete_events"): "a14c58828a905817",
    ("SqlEventLogStorage", "delete_events_for_run"): "63bcf3634eaf0824",
    ("SqlEventLogStorage", "wipe"): "bcc2303e63d1b2fe",
    # The entry point the loader calls, and the hook it does not use.
    ("EventLogStorage", "get_asset_check_state"): "534972316a0767b4",
    ("EventLogStorage", "get_checkpointed_asset_check_state"): "28184740283cc99a",
    # The PostgreSQL class: built by name in from_config_value (hence the override), its init.
    ("PostgresEventLogStorage", "from_config_value"): "c2785eb9f98f6f96",
    ("PostgresEventLogStorage", "__init__"): "647dff00b58c1222",
}


def test_the_private_dagster_names_the_checkpoint_relies_on_are_still_there() -> None:
    import importlib

    from dagster._core.asset_graph_view.serializable_entity_subset import (
        SerializableEntitySubset,
    )
    from dagster._core.definitions.partitions.definition import (
        StaticPartitionsDefinition,
        TimeWindowPartitionsDefinition,
    )
    from dagster._core.definitions.partitions.snap.snap import PartitionsSnap
    from dagster._core.definitions.partitions.subset import (
        PartitionsSubset,
        TimeWindowPartitionsSubset,
    )
    from dagster._core.definitions.partitions.utils.time_window import TimeWindow
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
        AssetCheckExecutionResolvedStatus,
        AssetCheckPartitionInfo,
    )
    from dagster._core.storage.asset_check_state import AssetCheckState
    from dagster._core.storage.dagster_run import (
        FINISHED_STATUSES,
        NOT_FINISHED_STATUSES,
        RunsFilter,
    )
    from dagster._core.storage.event_log.base import EventLogStorage
    from dagster._core.storage.event_log.schema import (
        AssetCheckExecutionsTable,
        AssetKeyTable,
        SqlEventLogStorageTable,
    )
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
        ConsolidatedSqliteEventLogStorage,
    )
    from dagster_postgres.event_log import PostgresEventLogStorage
    from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

    from flower_assets.instance_storage import PooledSqliteEventLogStorage
    from flower_assets.instance_storage_postgres import CheckpointedPostgresEventLogStorage

    # The classes: the mixin first, so that its get_asset_check_state is the one called.
    assert PooledSqliteEventLogStorage.__mro__[1:3] == (
        CheckpointedCheckState,
        ConsolidatedSqliteEventLogStorage,
    )
    assert CheckpointedPostgresEventLogStorage.__bases__ == (
        CheckpointedCheckState,
        PostgresEventLogStorage,
    )
    assert issubclass(ConsolidatedSqliteEventLogStorage, SqlEventLogStorage)
    assert issubclass(PostgresEventLogStorage, SqlEventLogStorage)
    # The UI reaches the state through the storage's get_asset_check_state (the loader).
    assert "event_log_storage.get_asset_check_state(keys)" in inspect.getsource(
        AssetCheckState._blocking_batch_load
    )
    # Storage methods and their signatures, as called or overridden.
    signatures = {
        "get_asset_check_state": ["self", "keys"],
        "get_checkpointed_asset_check_state": ["self", "keys"],
        "get_asset_check_partition_info": ["self", "keys", "after_storage_id", "partition_keys"],
        "_get_latest_unpartitioned_materialization_storage_ids": ["self", "keys"],
        "wipe": ["self"],
        "wipe_asset": ["self", "asset_key"],
        "wipe_asset_partitions": ["self", "asset_key", "partition_keys"],
        "get_maximum_record_id": ["self"],
    }
    for name, parameters in signatures.items():
        method = getattr(SqlEventLogStorage, name, None) or getattr(EventLogStorage, name)
        assert list(inspect.signature(method).parameters) == parameters, name
    for cls in (ConsolidatedSqliteEventLogStorage, PostgresEventLogStorage):
        assert list(inspect.signature(cls.index_connection).parameters) == ["self"]
        assert list(inspect.signature(cls.has_table).parameters) == ["self", "table_name"]
    assert list(inspect.signature(PostgresEventLogStorage.__init__).parameters) == [
        "self",
        "postgres_url",
        "should_autocreate_tables",
        "inst_data",
        "token_provider",
    ]
    assert callable(pg_url_from_config) and callable(get_token_provider_from_config)
    # The tables and columns the probes and fingerprints read, and the indexes they use.
    columns = {
        SqlEventLogStorageTable: {
            "id", "run_id", "dagster_event_type", "timestamp", "asset_key", "partition"
        },
        AssetCheckExecutionsTable: {
            "id", "asset_key", "check_name", "partition", "run_id", "execution_status",
            "evaluation_event_storage_id", "materialization_event_storage_id",
        },
        AssetKeyTable: {"asset_key", "asset_details", "last_materialization"},
    }  # fmt: skip
    for table, names in columns.items():
        assert names <= set(table.c.keys()), table.name
    indexes = {index.name for t in columns for index in t.indexes}
    assert {"idx_events_by_asset", "idx_event_type", "idx_asset_check_executions_unique"} <= indexes
    # The records and the state.
    assert set(AssetCheckPartitionInfo.__annotations__) == {
        "check_key",
        "partition_key",
        "latest_execution_status",
        "latest_planned_run_id",
        "latest_check_event_storage_id",
        "latest_materialization_storage_id",
        "latest_target_materialization_storage_id",
    }
    assert isinstance(AssetCheckPartitionInfo.is_current, property)
    assert set(AssetCheckState.__annotations__) >= {
        "latest_storage_id",
        "subsets",
        "in_progress_runs",
    }
    assert {s.name for s in AssetCheckExecutionRecordStatus} == {"PLANNED", "SUCCEEDED", "FAILED"}
    assert {s.name for s in AssetCheckExecutionResolvedStatus} == {
        "IN_PROGRESS",
        "SUCCEEDED",
        "FAILED",
        "EXECUTION_FAILED",
        "SKIPPED",
    }
    assert set(FINISHED_STATUSES) == {
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    }
    assert set(FINISHED_STATUSES) | set(NOT_FINISHED_STATUSES) >= set(dg.DagsterRunStatus) - {
        dg.DagsterRunStatus.MANAGED
    }
    assert {"run_ids", "statuses", "updated_after"} <= set(inspect.signature(RunsFilter).parameters)
    assert list(inspect.signature(SerializableEntitySubset).parameters) == ["key", "value"]
    # Partitions: subsets built from windows, stored with Dagster's serdes, rebound on load.
    assert list(inspect.signature(TimeWindowPartitionsSubset.__new__).parameters)[1:] == [
        "partitions_def",
        "num_partitions",
        "included_time_windows",
    ]
    for name in ("with_partitions_def", "to_serializable_subset", "get_partition_keys"):
        assert callable(getattr(TimeWindowPartitionsSubset, name)), name
    assert issubclass(TimeWindowPartitionsSubset, PartitionsSubset)
    assert list(inspect.signature(TimeWindow).parameters) == ["start", "end"]
    for name in (
        "has_partition_key",
        "get_partition_keys",
        "subset_with_partition_keys",
        "time_window_for_partition_key",
        "get_last_partition_window",
        "empty_subset",
    ):
        assert callable(getattr(TimeWindowPartitionsDefinition, name)), name
    assert "exclusions" in dir(TimeWindowPartitionsDefinition)
    assert callable(StaticPartitionsDefinition.subset_with_partition_keys)
    assert callable(PartitionsSnap.from_def)
    for name in (
        "ASSET_CHECK_EVALUATION",
        "ASSET_CHECK_EVALUATION_PLANNED",
        "ASSET_MATERIALIZATION",
    ):
        assert hasattr(dg.DagsterEventType, name)
    # The code read for 1.13.27 is unchanged.
    holders = {
        "SqlEventLogStorage": SqlEventLogStorage,
        "EventLogStorage": EventLogStorage,
        "PostgresEventLogStorage": PostgresEventLogStorage,
    }
    changed = {}
    for (holder, name), digest in DAGSTER_SOURCES.items():
        obj = (
            importlib.import_module(holder)
            if name is None
            else vars(holders[holder]).get(name) or getattr(holders[holder], name)
        )
        if _digest(obj) != digest:
            changed[f"{holder}.{name}" if name else holder] = _digest(obj)
    assert not changed, (
        f"Dagster {dg.__version__} changed code the check state checkpoint relies on "
        f"(read in 1.13.27): {changed}. Re-read it against docs/check-state-checkpoint.md."
    )


def test_the_test_histories_use_these_dagster_classes() -> None:
    """check_state_history.py builds event payloads with three classes outside the public API,
    and the tests compare with Dagster's own full computation."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned,
        AssetCheckEvaluationTargetMaterializationData,
    )
    from dagster._core.events import StepMaterializationData
    from dagster._core.storage.asset_check_state import bulk_update_asset_check_state

    assert {"asset_key", "check_name", "partitions_subset"} <= set(
        AssetCheckEvaluationPlanned.__annotations__
    )
    assert {"storage_id", "run_id", "timestamp"} <= set(
        AssetCheckEvaluationTargetMaterializationData.__annotations__
    )
    assert "materialization" in inspect.signature(StepMaterializationData).parameters
    assert list(inspect.signature(bulk_update_asset_check_state).parameters) == [
        "instance",
        "keys",
        "initial_states",
    ]


def test_both_instance_configs_select_the_checkpointed_event_logs() -> None:
    """The repo's dagster.yaml (SQLite) and deploy/postgres/dagster.yaml name the classes; run
    and schedule storage stay Dagster's own for PostgreSQL."""
    import yaml

    sqlite = yaml.safe_load((REPO / "dagster.yaml").read_text())
    postgres = yaml.safe_load((REPO / "deploy" / "postgres" / "dagster.yaml").read_text())
    assert sqlite["event_log_storage"]["module"] == "flower_assets.instance_storage"
    assert sqlite["event_log_storage"]["class"] == "PooledSqliteEventLogStorage"
    assert "storage" not in postgres
    assert postgres["event_log_storage"]["module"] == "flower_assets.instance_storage_postgres"
    assert postgres["event_log_storage"]["class"] == "CheckpointedPostgresEventLogStorage"
    assert postgres["run_storage"]["module"] == "dagster_postgres.run_storage"
    assert postgres["run_storage"]["class"] == "PostgresRunStorage"
    assert postgres["schedule_storage"]["module"] == "dagster_postgres.schedule_storage"
    assert postgres["schedule_storage"]["class"] == "PostgresScheduleStorage"
    url = {"env": "DAGSTER_PG_URL"}
    for name in ("run_storage", "event_log_storage", "schedule_storage"):
        assert postgres[name]["config"] == {"postgres_url": url}, name


def test_the_postgres_yaml_opens_the_checkpointed_event_log(
    tmp_path, monkeypatch, dagster_postgres_url
) -> None:
    shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", tmp_path / "dagster.yaml")
    url = dagster_postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    with dg.DagsterInstance.get() as instance:
        from dagster_postgres.run_storage import PostgresRunStorage
        from dagster_postgres.schedule_storage import PostgresScheduleStorage

        from flower_assets.instance_storage_postgres import CheckpointedPostgresEventLogStorage

        assert type(instance.event_log_storage) is CheckpointedPostgresEventLogStorage
        assert type(instance.run_storage) is PostgresRunStorage
        assert type(instance.schedule_storage) is PostgresScheduleStorage
        # A run worker opens the instance from its ref: the same classes.
        with dg.DagsterInstance.from_ref(instance.get_ref()) as again:
            assert type(again.event_log_storage) is CheckpointedPostgresEventLogStorage


def test_refresh_builds_checkpoints_ahead_of_the_ui_and_a_failed_write_keeps_the_answer(
    tmp_path, monkeypatch
) -> None:
    definition = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")
    asset = dg.AssetKey(["refreshed", uuid.uuid4().hex[:8]])
    checks = [dg.AssetCheckKey(asset, name) for name in ("rows", "dates")]
    keys = [(check, definition) for check in checks]
    (instance,) = open_instances(tmp_path, sqlite_overrides(tmp_path), count=1)
    try:
        writer = HistoryWriter(instance)
        writer.ranged_run(asset, checks, definition, definition.get_partition_keys()[:20])
        done = checkpoint_module.refresh(instance, [*keys, (dg.AssetCheckKey(asset, "x"), None)])
        assert done["rebuilt"] == 2 and done["written"] == 2, done
        assert _stored_versions(instance, asset) == [1, 1]
        storage = instance.event_log_storage
        before = Counter(storage.checkpoint_stats)
        storage.get_asset_check_state(keys)
        # Nothing to rebuild or write (the run, finished a moment ago, is read again: folded).
        after = storage.checkpoint_stats - before
        assert after["unchanged"] + after["folded"] == 2 and set(after) <= {"unchanged", "folded"}

        # A checkpoint that cannot be written: the answer stands, with a warning.
        def locked(*_args, **_kwargs):
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

        monkeypatch.setattr(CheckpointedCheckState, "CHECKPOINT_ERRORS", "fallback")
        monkeypatch.setattr(checkpoint_module, "_compare_and_set", locked)
        writer.ranged_run(asset, checks, definition, definition.get_partition_keys()[20:22])
        assert_same_states(
            dict(storage.get_asset_check_state(keys)),
            dagsters_state(instance, keys),
            "with the checkpoint not written",
        )
        assert storage.checkpoint_stats["not written"] == 2
    finally:
        instance.dispose()
