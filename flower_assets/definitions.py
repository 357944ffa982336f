"""The code location: everything `flower_assets/defs/` declares, found by load_from_defs_folder.

What cannot be discovered is here: the executor, and Dagster's event batching.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from flower_assets import settings

# Every setting checked before anything reads one: a refused value stops the location with the
# line `flower-assets` prints for it, not with a traceback from deep in the resources.
settings.validate()
# Dagster's event batching, in every process that runs this location's code (a run's planned
# events and each ranged output's materializations stored in one transaction per batch): set
# here because every run process loads this module first (settings.apply_event_batching).
settings.apply_event_batching()

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    # One process per run: a step per process costs seconds for work that takes milliseconds.
    dg.Definitions(executor=dg.in_process_executor),
)
