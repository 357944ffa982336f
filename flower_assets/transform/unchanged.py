"""The unchanged-content rule: what each date holds, and which steps still have work to do.

The raw step hashes each date's items and logs the hash with the date's status: `success` (fit
to load) or `blocked` (stored verbatim, but a blocking check failed, so the normalized tables
keep their previous version of the date). The normalizing steps log the hash they processed; a
date whose current content a step has already processed is recorded but not rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import polars as pl

NORMALIZING_ASSETS = ("flower_types", "flowers", "bidding_flowers")
# Upload-log statuses of a date whose raw rows are stored.
LOADABLE = "success"
BLOCKED = "blocked"


def content_hash(raw: pl.DataFrame) -> str:
    """SHA-256 over the date's items (category and exact text), independent of their order."""
    lines = raw.select(pl.concat_str("flower_gubn", pl.lit("\t"), "raw_item")).to_series().sort()
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _latest(logs: pl.DataFrame, by: list[str], statuses: tuple[str, ...]) -> pl.DataFrame:
    done = logs.filter(pl.col("status").is_in(statuses)).sort("finished_at")
    return done.group_by(by, maintain_order=True).last()


@dataclass(frozen=True)
class Stored:
    """The raw content stored for a date: its hash, and why it is blocked (None if loadable)."""

    content_hash: str
    blocked_by: str | None


def latest_stored_uploads(uploads: pl.DataFrame) -> pl.DataFrame:
    """Per auction date, the last upload that stored rows: what the raw table holds."""
    return _latest(uploads, ["auction_date"], (LOADABLE, BLOCKED))


def stored_raw(uploads: pl.DataFrame) -> dict[date, Stored]:
    """Per auction date, the content the raw table holds (the last upload that stored rows)."""
    last = latest_stored_uploads(uploads)
    return {
        day: Stored(content, error if status == BLOCKED else None)
        for day, content, status, error in last.select(
            "auction_date", "content_hash", "status", "error_text"
        ).rows()
    }


def processed(processes: pl.DataFrame, asset: str) -> dict[date, str]:
    """Per auction date, the raw content hash the asset last processed successfully."""
    last = _latest(processes.filter(pl.col("asset") == asset), ["auction_date"], (LOADABLE,))
    return dict(last.select("auction_date", "raw_content_hash").rows())


def pending(days: list[date], stored: dict[date, Stored], done: dict[date, str]) -> list[date]:
    """Loadable dates whose stored raw content is not the one a step last processed (`done`)."""
    return [
        day
        for day in days
        if day in stored
        and stored[day].blocked_by is None
        and done.get(day) != stored[day].content_hash
    ]


def not_loaded(days: list[date], uploads: pl.DataFrame, processes: pl.DataFrame) -> dict[date, str]:
    """The dates of `days` whose latest answer is not in the auction records, each with why.

    A date is loaded when its latest fetch stored an answer fit to load and bidding_flowers
    loaded exactly that answer. Otherwise the cause: the fetch failed (the tables keep any
    earlier version), the answer is blocked, loading it failed, or it was never fetched.
    """

    def latest(logs: pl.DataFrame) -> dict[date, dict]:
        last = logs.sort("finished_at").group_by("auction_date", maintain_order=True).last()
        return {row["auction_date"]: row for row in last.iter_rows(named=True)}

    attempts = latest(uploads)
    steps = {
        asset: latest(processes.filter(pl.col("asset") == asset)) for asset in NORMALIZING_ASSETS
    }
    loaded = processed(processes, "bidding_flowers")
    stored = stored_raw(uploads)
    causes = {}
    for day in days:
        attempt = attempts.get(day)
        if attempt is None:
            causes[day] = "never fetched"
        elif attempt["status"] not in (LOADABLE, BLOCKED):
            kept = "; the tables keep its earlier answer" if day in stored else ""
            causes[day] = f"the fetch failed: {attempt['error_text']}{kept}"
        elif attempt["status"] == BLOCKED:
            causes[day] = f"the answer is blocked: {attempt['error_text']}"
        elif loaded.get(day) != attempt["content_hash"]:
            failed = [
                f"{asset} failed on it: {step[day]['error_text']}"
                for asset, step in steps.items()
                if day in step and step[day]["status"] != LOADABLE
            ]
            causes[day] = "its answer is stored but not loaded into bidding_flowers" + (
                f": {failed[0]}" if failed else ""
            )
    return causes
