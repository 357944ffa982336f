"""Content versions of raw partitions: what changed, and which steps still have work to do.

The raw asset hashes each date's items; the normalizing assets log the hash they processed.
A date whose raw content every normalizing step has already processed is not recomputed.
"""

from __future__ import annotations

import hashlib
from datetime import date

import polars as pl

NORMALIZING_ASSETS = ("flower_types", "flowers", "bidding_flowers")


def content_hash(raw: pl.DataFrame) -> str:
    """SHA-256 over the date's items (category and exact text), independent of their order."""
    lines = raw.select(pl.concat_str("flower_gubn", pl.lit("\t"), "raw_item")).to_series().sort()
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def latest_success(logs: pl.DataFrame, by: list[str], hash_column: str) -> dict[tuple, str]:
    """The hash of the last successful log row per key."""
    done = logs.filter(pl.col("status") == "success").sort("finished_at")
    last = done.group_by(by, maintain_order=True).last()
    return {tuple(row[:-1]): row[-1] for row in last.select(*by, hash_column).rows()}


def pending(
    days: list[date], uploads: pl.DataFrame, processes: pl.DataFrame, asset: str
) -> list[date]:
    """Dates whose current raw content the asset has not processed yet."""
    current = latest_success(uploads, ["auction_date"], "content_hash")
    processed = latest_success(processes, ["asset", "auction_date"], "raw_content_hash")
    return [
        day
        for day in days
        if current.get((day,)) is None or processed.get((asset, day)) != current.get((day,))
    ]
