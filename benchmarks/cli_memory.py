"""Peak memory of `flower-assets materialize` as the warehouse grows (issue 9).

    uv run python benchmarks/cli_memory.py [--years 3] [--volume 0.2] [--first-year 2021]
                                           [--database-url URL] [--source DIR]

Loads whole calendar years, one after the other, into ONE warehouse, each year through the CLI
as a fresh process (`python -m flower_assets.cli materialize --from Y-01-01 --to Y-12-31`), the
way an operator backfills history. The answers come from the synthetic Yangjae market
(`flower_assets.sample.market.day_items(day, category, volume)`), served over loopback HTTP by
`flower_assets.sample.fake_at_server.FakeAtServer`. The Dagster instance is a fresh one configured as the
repo's dagster.yaml, shared by all years, as the warehouse is.

For every year it prints the child's exit code, wall time, peak RSS (the child's own
`ru_maxrss`, from `os.wait4`) and the warehouse's raw row count afterwards. A CLI whose memory
does not depend on the warehouse's size shows about the same peak every year. `--source DIR`
runs the CLI of another checkout (e.g. the previous commit, `git archive HEAD | tar -x -C DIR`)
against the same data, for a before/after comparison. No assertion: it only measures.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from flower_assets.sample.fake_at_server import FakeAtServer
from flower_assets.sample.market import day_items
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import RAW

HERE = Path(__file__).resolve().parent
FAKE_KEY = "0123456789abcdef0123456789abcdef"


def dagster_home(workdir: Path) -> Path:
    """A fresh instance configured as the repo's dagster.yaml, the embedded default."""
    home = workdir / "dagster_home"
    home.mkdir()
    config = (HERE.parent / "dagster.yaml").read_text().replace(".dagster_home", str(home))
    (home / "dagster.yaml").write_text(config)
    return home


def run_year(year: int, env: dict[str, str], log: Path) -> dict[str, object]:
    """One year through the CLI in a child process: exit code, wall time, the child's peak RSS."""
    argv = [
        sys.executable,
        "-m",
        "flower_assets.cli",
        "materialize",
        "--from",
        f"{year}-01-01",
        "--to",
        f"{year}-12-31",
    ]
    started = time.perf_counter()
    # cwd is the log's directory: `python -m` puts the cwd first on sys.path, and a checkout
    # there would shadow --source.
    with log.open("w") as out:
        child = subprocess.Popen(
            argv, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
    return {
        "year": year,
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": round(time.perf_counter() - started, 1),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=3, help="calendar years to load (3)")
    parser.add_argument("--volume", type=float, default=0.2, help="market size (0.2)")
    parser.add_argument("--first-year", type=int, default=2021)
    parser.add_argument(
        "--database-url", help="warehouse (default: a new SQLite file in a temporary directory)"
    )
    parser.add_argument("--source", help="a checkout whose flower_assets the CLI should run")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="flower_cli_memory_"))
    url = args.database_url or f"sqlite:///{workdir / 'warehouse.sqlite'}"
    home = dagster_home(workdir)
    volume = args.volume
    results = []
    with FakeAtServer(lambda day, category: day_items(day, category, volume)) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))},
            "FLOWER_API_KEY": FAKE_KEY,
            "FLOWER_API_BASE_URL": server.url,
            "FLOWER_DATABASE_URL": url,
            "FLOWER_START_DATE": date(args.first_year, 1, 1).isoformat(),
            # The fake server has no quota, and a benchmark must not wait for midnight KST.
            "FLOWER_API_DAILY_QUOTA": "1000000",
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "yes",
        }
        if args.source:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(Path(args.source).resolve()), *filter(None, [env.get("PYTHONPATH")])]
            )
        print(f"work directory {workdir}, warehouse {url}, volume {volume}", flush=True)
        for year in range(args.first_year, args.first_year + args.years):
            result = run_year(year, env, workdir / f"cli_{year}.log")
            with Warehouse.open(url) as warehouse:
                result["raw_rows_after"] = warehouse.row_count(RAW)
            result["api_calls_so_far"] = len(server.requests)
            results.append(result)
            print(
                f"{year}: exit {result['exit_code']}, {result['wall_s']:>7} s, "
                f"peak RSS {result['peak_rss_mb']:>7} MB, "
                f"warehouse then holds {result['raw_rows_after']:,} raw rows",
                flush=True,
            )
            if result["exit_code"] != 0:
                print(f"  the CLI failed; its output: {workdir / f'cli_{year}.log'}", flush=True)
    print(
        json.dumps({"volume": volume, "source": args.source or "this checkout", "years": results})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
