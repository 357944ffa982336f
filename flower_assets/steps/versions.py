"""Each auction date's data version: a digest of what the asset's table holds for the date.

Dagster marks a date stale when a date it depends on has a new data version. Versions Dagster
computes itself follow from the code version and the input versions of the run's whole range,
so a single-date run (the UI's Materialize) gives a date another version than the ranged run
before it, although nothing changed. These versions come from the warehouse instead, read after
the step: the same content gives the same version, whoever ran which range.

- public_bidding_flowers: the hash of the answer the raw table holds (its last stored upload).
- flower_types, flowers: the raw content hash the master last loaded for the date.
- bidding_flowers: a digest of the date's record digests (what the market layer reads).
"""

from __future__ import annotations

import hashlib
from datetime import date

from flower_assets.transform import unchanged
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import BIDDING, FLOWER_TYPES, FLOWERS, RAW, RECORD_DIGESTS

NOTHING_STORED = "nothing stored"
NO_RECORDS = "no auction records"


def raw_versions(wh: Warehouse, days: list[date]) -> dict[date, str]:
    stored = unchanged.stored_raw(wh.upload_logs(days[0], days[-1]))
    return {day: stored[day].content_hash if day in stored else NOTHING_STORED for day in days}


def master_versions(wh: Warehouse, days: list[date], asset: str) -> dict[date, str]:
    _, processes = wh.batch_logs(days[0], days[-1])
    done = unchanged.processed(processes, asset)
    return {day: done.get(day, NOTHING_STORED) for day in days}


def records_versions(wh: Warehouse, days: list[date]) -> dict[date, str]:
    digests = wh.read_range(RECORD_DIGESTS, days[0], days[-1], RECORD_DIGESTS.columns)
    lines: dict[date, list[str]] = {}
    for day, gubn, records, digest in digests.select(
        "auction_date", "flower_gubn", "records", "digest"
    ).rows():
        lines.setdefault(day, []).append(f"{gubn}\t{records}\t{digest}")
    return {
        day: hashlib.sha256("\n".join(sorted(lines[day])).encode()).hexdigest()
        if day in lines
        else NO_RECORDS
        for day in days
    }


def content_versions(wh: Warehouse, days: list[date], asset: str) -> dict[date, str]:
    """The data version of each of `days` for the auction asset `asset`."""
    if asset == RAW.name:
        return raw_versions(wh, days)
    if asset in (FLOWER_TYPES.name, FLOWERS.name):
        return master_versions(wh, days, asset)
    if asset == BIDDING.name:
        return records_versions(wh, days)
    raise ValueError(f"no content version for {asset}")
