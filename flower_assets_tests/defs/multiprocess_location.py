"""The platform's code location run by Dagster's multiprocess executor: one process per step.

The platform runs with the in-process executor for speed; its correctness must not rest on it.
`test_multiprocess.py` runs `flower_auction_job` from here.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

import flower_assets

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(flower_assets.__file__).parent),
    dg.Definitions(executor=dg.multiprocess_executor),
)
