"""What Dagster alone costs to backfill an asset graph shaped like ours, with no data at all.

    uv run python benchmarks/orchestration_floor.py [--assets 4] [--days 366] [--checks 0]

Chained trivial daily-partitioned assets (like the four flower_auction assets), each with
`--checks` partitioned asset checks whose evaluations are logged per partition (as
flower_assets.defs.judging does in a multi-date run), backfilled in ranged runs of the project's
`max_partitions_per_run` on a fresh DagsterInstance configured as the repo's dagster.yaml, in
process. No API, no warehouse:
the wall time is the floor under any backfill of that shape, and per_partition_run_s / floor
bounds the speedup a ranged backfill can reach over one run per partition.

Prints one JSON line: wall_s (the runs alone), events recorded, and ms per asset-partition.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from backfill import dagster_home
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from flower_assets.defs.dated import BACKFILL_POLICY


# No `from __future__ import annotations` here: Dagster inspects the context annotation at
# definition time and rejects the string "dg.AssetExecutionContext".
def trivial_assets(
    count: int, checks: int, partitions: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """`count` chained assets, each logging `checks` check evaluations per partition."""
    assets: list[dg.AssetsDefinition] = []
    for index in range(count):
        name = f"asset_{index}"
        specs = [
            dg.AssetCheckSpec(f"check_{n}", asset=name, partitions_def=partitions)
            for n in range(checks)
        ]

        @dg.asset(
            name=name,
            partitions_def=partitions,
            backfill_policy=BACKFILL_POLICY,
            deps=assets[-1:],
            check_specs=specs,
        )
        def trivial(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            key = context.assets_def.key
            for spec in context.assets_def.check_specs:
                for partition in context.partition_keys:
                    context.log_event(
                        dg.AssetCheckEvaluation(
                            asset_key=key, check_name=spec.name, passed=True, partition=partition
                        )
                    )
            return dg.MaterializeResult(
                check_results=[
                    dg.AssetCheckResult(check_name=spec.name, passed=True)
                    for spec in context.assets_def.check_specs
                ]
            )

        assets.append(trivial)
    return assets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", type=int, default=4)
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--checks", type=int, default=0, help="partitioned checks per asset")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    args = parser.parse_args()

    partitions = dg.DailyPartitionsDefinition(start_date=args.start.isoformat())
    job = dg.Definitions(
        assets=trivial_assets(args.assets, args.checks, partitions),
        executor=dg.in_process_executor,
    ).resolve_implicit_global_asset_job_def()
    workdir = Path(tempfile.mkdtemp(prefix="flower_floor_"))
    try:
        os.environ["DAGSTER_HOME"] = str(dagster_home(workdir, "home"))
        events = 0
        with dg.DagsterInstance.get() as instance:
            began = time.perf_counter()
            size = BACKFILL_POLICY.max_partitions_per_run
            for offset in range(0, args.days, size):
                first = args.start + timedelta(days=offset)
                last = args.start + timedelta(days=min(args.days, offset + size) - 1)
                result = job.execute_in_process(
                    instance=instance,
                    tags={
                        ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                        ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                    },
                    # As flower_assets.cli.materialize_range: the console shows INFO and up.
                    run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                )
                assert result.success
                events += len(instance.all_logs(result.run_id))
            wall_s = time.perf_counter() - began
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        json.dumps(
            {
                "assets": args.assets,
                "checks_per_asset": args.checks,
                "partitions": args.days,
                "wall_s": round(wall_s, 2),
                "events": events,
                "ms_per_asset_partition": round(wall_s / args.days / args.assets * 1000, 1),
                "ms_per_event": round(wall_s / events * 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
