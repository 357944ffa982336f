"""The code location: everything `flower_assets/defs/` declares, found by load_from_defs_folder.

What cannot be discovered is here: the executor, and Dagster's event batching.
"""

from __future__ import annotations

import warnings
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

# Resolving the jobs, Dagster warns that flower_market_job mixes backfill policies: it observes
# market_inputs (an observable source, which takes no backfill policy) before it builds the
# market tables (100 dates a run), so a backfill of that job alone runs one date per run. The
# market sensor and the CLI launch it for ranges of dates (its tags), which is unaffected; the
# job's description says so. Resolved here, once, so the warning is silenced only where raised.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Asset job flower_market_job materializes assets with varying"
    )
    defs.get_repository_def()
