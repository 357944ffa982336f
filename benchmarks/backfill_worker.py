"""Child process of `backfill.py`: backfill a range of auction dates as a user would.

Run with the platform's environment already set (FLOWER_API_KEY, FLOWER_API_BASE_URL,
FLOWER_DATABASE_URL, FLOWER_START_DATE, DAGSTER_HOME): `flower_assets.definitions` builds its
resources and partitions from it at import time, which is why this is a process of its own.
It also makes the peak RSS reported here the backfill's alone, not the fake server's.

The range is split the way the assets' own `BackfillPolicy.multi_run(max_partitions_per_run)`
splits a backfill, and each chunk is one run on the real DagsterInstance of $DAGSTER_HOME,
through `flower_assets.cli.materialize_range` (the ranged run the CLI launches). Runs go one
after another: they share one API pool and, on SQLite, one writer.

Prints one JSON line: per-run outcomes, when the last partition was materialized, which
partitions each asset has materialized, and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from datetime import date, timedelta


def chunks(start: date, end: date, size: int) -> list[tuple[date, date]]:
    """start..end (inclusive) in consecutive ranges of at most `size` days."""
    ranges = []
    while start <= end:
        last = min(end, start + timedelta(days=size - 1))
        ranges.append((start, last))
        start = last + timedelta(days=1)
    return ranges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--prototype", action="append", default=[], help="see prototypes.py")
    args = parser.parse_args()

    from prototypes import PROTOTYPES

    from flower_assets.cli import local_instance, materialize_range
    from flower_assets.defs.auction.assets import flower_auction_assets
    from flower_assets.defs.dated import BACKFILL_POLICY

    for name in args.prototype:
        PROTOTYPES[name]()

    runs = []
    with local_instance() as instance:
        for first, last in chunks(args.start, args.end, BACKFILL_POLICY.max_partitions_per_run):
            began = time.perf_counter()
            result = materialize_range(first, last, instance)
            wall_s = time.perf_counter() - began
            # What Dagster recorded: past a few events per partition, their count sets the pace.
            events = Counter(
                entry.dagster_event_type.value if entry.dagster_event_type else "LOG_MESSAGE"
                for entry in instance.all_logs(result.run_id)
            )
            runs.append(
                {
                    "start": first.isoformat(),
                    "end": last.isoformat(),
                    "success": result.success,
                    "wall_s": round(wall_s, 3),
                    "events": dict(events.most_common()),
                }
            )
            if not result.success:
                break
        done_at = time.time()
        materialized = {
            key.to_user_string(): sorted(instance.get_materialized_partitions(key))
            for asset in flower_auction_assets
            for key in asset.keys
        }
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "runs": runs,
                "done_at": done_at,
                "materialized": materialized,
                # ru_maxrss is in KiB on Linux.
                "peak_rss_mb": usage.ru_maxrss / 1024,
                # CPU time varies less than wall time when the two cores are shared.
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }
        )
    )
    return 0 if all(run["success"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
