"""The platform's assets under Dagster's default executor: the baseline of per_partition_run_s.

Dagster runs each step in its own process unless told otherwise; the platform's definitions
choose the in-process executor instead (one of the optimizations the benchmark measures). This
module is what a project without that choice would load, for
`dagster asset materialize -f benchmarks/default_executor.py --select '*' --partition D`.
"""

import dagster as dg

import flower_assets


def with_default_executor(platform: dg.Definitions) -> dg.Definitions:
    """The same assets, checks, job and resources, with no executor chosen."""
    return dg.Definitions(
        assets=platform.assets,
        asset_checks=platform.asset_checks,
        jobs=platform.jobs,
        resources=platform.resources,
    )


# The only Definitions at module scope, as Dagster requires of a file it loads.
defs = with_default_executor(flower_assets.location_defs)
