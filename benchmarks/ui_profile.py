"""Child process of `ui_queries.py --profile`: where one UI query's time goes.

Run with the platform's environment (DAGSTER_HOME of the loaded instance, FLOWER_*), from the
repo root. It loads the workspace as the webserver does (`workspace.yaml`, the code location in
a code server of its own) and executes the query in this process through dagster_graphql's own
test entry point (`execute_dagster_graphql`: the webserver's schema, a fresh set of loaders per
request) inside the request context as the webserver enters it, once to warm up, once timed,
once under cProfile (stats written to --stats).

Then it takes Dagster's check-state computation apart for every check of --asset, which is
what a check's `partitionStatuses` resolves to (`AssetCheckState.gen` ->
`event_log_storage.get_asset_check_state` -> `bulk_update_asset_check_state`):

- `sql_s`: `get_asset_check_partition_info([check])`, the SQL: per partition, the latest check
  execution joined with the asset's latest materialization;
- `state_s`: `AssetCheckState.empty().with_updates(...)`, the Python: one subset operation per
  partition (`_process_partition_records`);
- `checkpointed_s`: the same update started from the state just computed, i.e. what a request
  would cost if a stored state were read and only newer events applied. Open-source storages
  return an empty state from `get_checkpointed_asset_check_state`, so every request today
  starts from nothing;
- `state_scaling`: `with_updates` over the first N partitions, to see how it grows with history;
- `batched_state_s`: a what-if for Dagster itself, the same state built with one subset per
  status from all its dates at once instead of a validation and a subset operation per date
  (`ui_prototypes.batched_check_state`, checked equal to Dagster's);
- `current_*`: the same, had every date's latest evaluation targeted that date's latest
  materialization (the records rewritten so), i.e. once the dates show as Passed or Failed
  instead of Missing: Dagster then takes the other branch, a union instead of differences.

Prints a report, then one JSON line.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

from ui_graphql import ui_document

# (file name, function): the pieces of Dagster's work the report follows.
TRACKED = {
    "get_asset_check_state (all checks)": ("event_log/base.py", "get_asset_check_state"),
    "bulk_update_asset_check_state": ("asset_check_state.py", "bulk_update_asset_check_state"),
    "  get_asset_check_partition_info (SQL)": (
        "sql_event_log.py",
        "get_asset_check_partition_info",
    ),
    "  AssetCheckState.with_updates": ("asset_check_state.py", "with_updates"),
    "    _process_partition_records": ("asset_check_state.py", "_process_partition_records"),
    "      _valid_partition_key": ("asset_check_state.py", "_valid_partition_key"),
    "      SerializableEntitySubset.from_coercible_value": (
        "serializable_entity_subset.py",
        "from_coercible_value",
    ),
    "      SerializableEntitySubset.compute_union": (
        "serializable_entity_subset.py",
        "compute_union",
    ),
    "      SerializableEntitySubset.compute_difference": (
        "serializable_entity_subset.py",
        "compute_difference",
    ),
    "build_asset_check_partition_statuses": (
        "fetch_asset_checks.py",
        "build_asset_check_partition_statuses",
    ),
    "get_latest_asset_check_execution_by_key": (
        "sql_event_log.py",
        "get_latest_asset_check_execution_by_key",
    ),
    "targets_latest_materialization": (
        "asset_check_execution_record.py",
        "targets_latest_materialization",
    ),
}


def package(filename: str) -> str:
    """Where a function lives, coarsely: whose computation its own time is."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (sqlite3, serdes C code, …)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1]
        if top == "dagster":
            sub = parts[parts.index("site-packages") + 2 :]
            return "dagster/" + "/".join(sub[: 3 if sub[:2] == ("_core", "storage") else 2])
        return top
    return "stdlib / other"


def analyse(stats: pstats.Stats, total_s: float) -> dict:
    raw = stats.stats  # type: ignore[attr-defined]
    tracked = {}
    for label, (suffix, name) in TRACKED.items():
        matches = [
            (nc, ct)
            for (filename, _line, function), (_cc, nc, _tt, ct, _callers) in raw.items()
            if function == name and filename.endswith(suffix)
        ]
        if matches:
            tracked[label] = {
                "calls": sum(nc for nc, _ in matches),
                "cumulative_s": round(sum(ct for _, ct in matches), 3),
            }
    own: dict[str, float] = {}
    sqlite_s = 0.0
    for (filename, _line, function), (_cc, _nc, tt, _ct, _callers) in raw.items():
        own[package(filename)] = own.get(package(filename), 0.0) + tt
        if "sqlite3" in function:
            sqlite_s += tt
    top_own = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:15]
    return {
        "profiled_total_s": round(total_s, 3),
        "tracked": tracked,
        "sqlite_calls_own_s": round(sqlite_s, 3),
        "own_time_by_package_s": {
            name: round(seconds, 3)
            for name, seconds in sorted(own.items(), key=lambda item: -item[1])
            if seconds >= 0.01
        },
        "top_own_time": [
            {
                "function": f"{Path(filename).name}:{line} {function}",
                "calls": nc,
                "own_s": round(tt, 3),
                "cumulative_s": round(ct, 3),
            }
            for (filename, line, function), (_cc, nc, tt, ct, _callers) in top_own
        ],
    }


def batched_state(key, partitions_def, infos):
    """The state as `ui_prototypes.batched_check_state` builds it (no finished runs to apply)."""
    from ui_prototypes import batched_check_state

    return batched_check_state(key, partitions_def, infos, {})


def same_state(one, other) -> bool:
    def dates(state) -> dict:
        return {
            status: sorted(subset.subset_value.get_partition_keys())
            for status, subset in state.subsets.items()
        }

    return dates(one) == dates(other) and set(one.in_progress_runs) == set(other.in_progress_runs)


def check_state_parts(instance, asset: str) -> dict:
    """Dagster's check-state computation for each check of `asset`, piece by piece."""
    import dagster as dg
    from dagster._core.storage.asset_check_state import (
        AssetCheckState,
        bulk_update_asset_check_state,
    )
    from dagster_graphql.implementation.fetch_asset_checks import (
        build_asset_check_partition_statuses,
    )
    from dagster_shared.record import copy

    from flower_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = sorted(
        (key for key in graph.asset_check_keys if key.asset_key == dg.AssetKey(asset)),
        key=lambda key: key.name,
    )
    partitioned = [(key, graph.get(key).partitions_def) for key in keys]
    partitioned = [(key, pdef) for key, pdef in partitioned if pdef is not None]
    storage = instance.event_log_storage

    began = time.perf_counter()
    storage.get_asset_check_state(partitioned)
    all_checks_s = time.perf_counter() - began

    began = time.perf_counter()
    storage.get_latest_asset_check_execution_by_key([key for key, _ in partitioned])
    latest_execution_s = time.perf_counter() - began

    per_check = []
    scaling = []
    for key, pdef in partitioned:
        began = time.perf_counter()
        infos = storage.get_asset_check_partition_info([key])
        sql_s = time.perf_counter() - began
        began = time.perf_counter()
        state = AssetCheckState.empty().with_updates(key, pdef, infos, {})
        state_s = time.perf_counter() - began
        began = time.perf_counter()
        bulk_update_asset_check_state(instance, [(key, pdef)], {key: state})
        checkpointed_s = time.perf_counter() - began
        began = time.perf_counter()
        build_asset_check_partition_statuses(key, state, pdef, instance)
        build_s = time.perf_counter() - began
        began = time.perf_counter()
        batched = batched_state(key, pdef, infos)
        batched_s = time.perf_counter() - began
        one_per_date = len({i.partition_key for i in infos}) == len(infos)
        current = [
            copy(i, latest_target_materialization_storage_id=i.latest_materialization_storage_id)
            for i in infos
        ]
        began = time.perf_counter()
        current_state = AssetCheckState.empty().with_updates(key, pdef, current, {})
        current_state_s = time.perf_counter() - began
        began = time.perf_counter()
        current_batched = batched_state(key, pdef, current)
        current_batched_s = time.perf_counter() - began
        per_check.append(
            {
                "check": key.name,
                "partition_rows": len(infos),
                "sql_s": round(sql_s, 3),
                "state_s": round(state_s, 3),
                "checkpointed_s": round(checkpointed_s, 3),
                "build_statuses_s": round(build_s, 3),
                "batched_state_s": round(batched_s, 3),
                "batched_state_equal": one_per_date and same_state(batched, state),
                "current_state_s": round(current_state_s, 3),
                "current_batched_state_s": round(current_batched_s, 3),
                "current_batched_state_equal": one_per_date
                and same_state(current_batched, current_state),
                "current_statuses": {
                    status.value: subset.size
                    for status, subset in current_state.subsets.items()
                    if subset.size
                },
                "statuses": {
                    status.value: subset.size
                    for status, subset in state.subsets.items()
                    if subset.size
                },
            }
        )
        if not scaling:
            # The dates only: the one execution per run without a partition is skipped anyway.
            ordered = sorted(
                (info for info in infos if info.partition_key), key=lambda info: info.partition_key
            )
            for share in (0.125, 0.25, 0.5, 1.0):
                part = ordered[: max(1, int(len(ordered) * share))]
                began = time.perf_counter()
                AssetCheckState.empty().with_updates(key, pdef, part, {})
                seconds = time.perf_counter() - began
                scaling.append(
                    {
                        "partitions": len(part),
                        "state_s": round(seconds, 3),
                        "us_per_partition": round(seconds / len(part) * 1e6, 1),
                    }
                )
    return {
        "asset": asset,
        "checks": len(partitioned),
        "get_asset_check_state_all_checks_s": round(all_checks_s, 3),
        "get_latest_asset_check_execution_by_key_s": round(latest_execution_s, 3),
        "per_check": per_check,
        "state_scaling": scaling,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--query", required=True, help="a query of ui_graphql.UI_QUERIES")
    parser.add_argument("--variables", required=True, help="its variables, JSON")
    parser.add_argument("--asset", required=True, help="whose checks to take apart")
    parser.add_argument("--stats", type=Path, required=True, help="cProfile stats file")
    parser.add_argument("--top", type=int, default=30, help="functions printed")
    args = parser.parse_args()

    import dagster as dg
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    document, variables = ui_document(args.query), json.loads(args.variables)
    with (
        dg.DagsterInstance.get() as instance,
        define_out_of_process_context("workspace.yaml", None, instance) as context,
        # As the webserver serves a request: inside its request context, whose partition loading
        # context fixes "now" for the request. Without it every partition-key check reads the
        # clock anew, misses the partitions definition's caches and costs ~2.5x as much.
        context,
    ):
        walls = []
        for _ in range(2):
            began = time.perf_counter()
            execute_dagster_graphql(context, document, variables)
            walls.append(time.perf_counter() - began)
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        execute_dagster_graphql(context, document, variables)
        profiler.disable()
        profiled_s = time.perf_counter() - began
        profiler.dump_stats(str(args.stats))
        parts = check_state_parts(instance, args.asset)

    stats = pstats.Stats(str(args.stats))
    print(f"{args.query} in-process: {walls[0]:.2f} s first, {walls[1]:.2f} s second")
    print(f"under cProfile: {profiled_s:.2f} s (stats: {args.stats}); top by cumulative time:")
    stats.sort_stats("cumulative").print_stats(r"dagster", args.top)
    report = analyse(stats, profiled_s)
    print("tracked functions (calls, cumulative s):")
    for label, value in report["tracked"].items():
        print(f"  {label:<52} {value['calls']:>8} {value['cumulative_s']:>8.3f}")
    print("own time by package (s):")
    for name, seconds in report["own_time_by_package_s"].items():
        print(f"  {name:<52} {seconds:>8.3f}")
    print(
        f"check state of {parts['asset']}'s {parts['checks']} checks: "
        f"get_asset_check_state {parts['get_asset_check_state_all_checks_s']:.2f} s, "
        f"latest executions {parts['get_latest_asset_check_execution_by_key_s']:.2f} s"
    )
    print(
        f"  {'check':<34} {'rows':>5} {'sql s':>6} {'state s':>7} {'ckpt s':>6} "
        f"{'build s':>7} {'batched s':>9} {'(equal)':>7}"
    )
    for row in parts["per_check"]:
        print(
            f"  {row['check']:<34} {row['partition_rows']:>5} {row['sql_s']:>6.3f} "
            f"{row['state_s']:>7.3f} {row['checkpointed_s']:>6.3f} "
            f"{row['build_statuses_s']:>7.3f} {row['batched_state_s']:>9.3f} "
            f"{row['batched_state_equal']!s:>7}"
        )
    print("  had the evaluations been current (Passed / Failed instead of Missing):")
    for row in parts["per_check"]:
        print(
            f"  {row['check']:<34} state {row['current_state_s']:.3f} s, "
            f"batched {row['current_batched_state_s']:.3f} s "
            f"(equal: {row['current_batched_state_equal']}) {row['current_statuses']}"
        )
    print("  with_updates over the first N partitions of one check:")
    for row in parts["state_scaling"]:
        print(
            f"    {row['partitions']:>6} partitions {row['state_s']:>8.3f} s "
            f"{row['us_per_partition']:>8.1f} us each"
        )
    print(
        json.dumps(
            {
                "query": args.query,
                "in_process_first_s": round(walls[0], 3),
                "in_process_second_s": round(walls[1], 3),
                **report,
                "check_state": parts,
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
