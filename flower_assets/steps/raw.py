"""The raw step for one auction date: fetch every category, judge, store verbatim, log.

A date's answer is fetched whole before anything is written. Its blocking rules are judged
here, because they decide what loads: a date that fails keeps its raw rows (stored verbatim)
but is logged `blocked`, and the normalizing steps leave its previous version in place. An
answer equal to the stored one is not rewritten; one that differs is a correction, whose
changes are kept in auction_corrections with the new rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from flower_assets.quality import catalog, integrity
from flower_assets.source.cache import CachedApi
from flower_assets.source.categories import Category
from flower_assets.source.errors import FlowerApiError, KeyRefused, refuses_the_key
from flower_assets.steps.batch_logs import batch_log, now
from flower_assets.steps.normalizing import QuarantineSplit
from flower_assets.steps.report import DateReport
from flower_assets.transform import revisions, unchanged
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.raw import item_fields, raw_rows, rows_per_category
from flower_assets.transform.unchanged import Stored
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import CORRECTIONS, RAW, UPLOAD_LOGS, PublicBiddingFlowers


@dataclass
class Fetched:
    """One auction date's answer, every category, with what fetching it took."""

    raw: pl.DataFrame
    calls: dict[str, int]


def fetch_auction_date(api: CachedApi, day: date, ask_again: bool = False) -> Fetched:
    """Every category of one auction date, fetched before anything is written.

    `ask_again`: from the API even where the response cache holds an answer.
    """
    frames, calls = [], {}
    for category in Category:
        answer = api.fetch_day(day, category, ask_again)
        calls[category.korean_name] = answer.api_calls
        frames.append(raw_rows(answer.items, day, category, answer.fetched_at))
    return Fetched(pl.concat(frames), calls)


def store_answer(
    wh: Warehouse, day: date, raw: pl.DataFrame, content: str, stored: Stored | None, run_id: str
) -> pl.DataFrame:
    """Store the date's answer, unless it is the one stored; a correction keeps what changed.

    Returns the corrections recorded with the new raw rows: none for a first or an unchanged
    answer. What changed is judged against the rows stored at the moment of writing.
    """
    if stored is not None and stored.content_hash == content:
        return revisions.NO_CHANGES  # the stored rows already are this answer

    def corrections_for(old: pl.DataFrame) -> pl.DataFrame:
        if stored is None and not old.height:
            return revisions.NO_CHANGES  # the date's first answer
        changes = revisions.diff_answers(old, raw)
        return revisions.as_recorded(
            changes, day, unchanged.content_hash(old), content, run_id, now()
        )

    return wh.replace_raw(day, raw, corrections_for)


def _day_counts(day: date, raw: pl.DataFrame) -> pl.DataFrame:
    counts = rows_per_category(raw)
    return pl.DataFrame(
        {
            "auction_date": [day] * len(counts),
            "flower_gubn": list(counts),
            "rows": list(counts.values()),
        },
        schema={"auction_date": pl.Date, "flower_gubn": pl.String, "rows": pl.Int64},
    )


@dataclass
class RawStep:
    """Fetches and stores the auction dates of one run, in date order."""

    wh: Warehouse
    api: CachedApi
    days: list[date]
    run_id: str
    max_rejected_share: float
    sample_mode: bool
    secret: str | None = None  # redacted from every log row
    # A refusal of the key (quota used up, key wrong): later dates of the run are not asked for.
    key_refused: FlowerApiError | None = None

    def __post_init__(self) -> None:
        self.stored = unchanged.stored_raw(self.wh.upload_logs(self.days[0], self.days[-1]))
        # Rows per earlier date and category, for expected_auction_day; grows as dates are stored.
        self.calendar = self.wh.rows_per_date_and_category(
            RAW,
            integrity.history_window_start(self.days[0]),
            self.days[0] - timedelta(days=1),
        )

    def fetch(self, day: date) -> Fetched:
        """The date's answer; after a refusal of the key itself, no further call is made."""
        if self.key_refused is not None:
            raise KeyRefused(day, self.key_refused)
        # A blocked answer is asked for again: the source may have fixed it since.
        blocked = day in self.stored and self.stored[day].blocked_by is not None
        try:
            return fetch_auction_date(self.api, day, ask_again=blocked)
        except FlowerApiError as exc:
            if refuses_the_key(exc):
                self.key_refused = exc
            raise

    def load(self, day: date) -> tuple[DateReport, QuarantineSplit | None]:
        """Fetch, judge and store the date; its report, and the split the normalizing steps
        load (none when the date is blocked)."""
        client = self.api.client
        calls_before, cached_before = client.calls_made, self.api.cache_hits
        with batch_log(
            self.wh,
            UPLOAD_LOGS,
            self.run_id,
            day,
            self.secret,
            items_received=0,
            items_loaded=0,
            items_rejected=0,
            api_calls=0,
            content_hash=None,
            raw_checks=None,
        ) as log:
            try:
                fetched = self.fetch(day)
            finally:
                log.values["api_calls"] = client.calls_made - calls_before
            raw = PublicBiddingFlowers.validate(fetched.raw)
            decoded = item_fields(raw)  # once, for quarantine and the rules
            loadable, rejected = split_loadable(decoded)
            content = unchanged.content_hash(raw)
            outcomes = catalog.judge_raw(
                day, decoded, rejected, self.calendar, self.max_rejected_share
            )
            blocked = catalog.blocked_by(catalog.RAW_CHECKS, outcomes)
            changed = day not in self.stored or self.stored[day].content_hash != content
            changes = store_answer(self.wh, day, raw, content, self.stored.get(day), self.run_id)
            log.values.update(
                items_received=raw.height,
                items_loaded=loadable.height,
                items_rejected=rejected.height,
                content_hash=content,
                raw_checks=catalog.outcomes_json(outcomes),
            )
            if blocked:
                log.status, log.note = unchanged.BLOCKED, blocked
        self.calendar = pl.concat([self.calendar, _day_counts(day, raw)])
        counts = rows_per_category(raw)
        messages = [
            (
                "info",
                f"{day}: {raw.height} raw rows {counts}, {rejected.height} to quarantine, "
                f"content {'changed' if changed else 'unchanged'}",
            )
        ]
        if changes.height:
            messages.append(
                (
                    "warning",
                    f"{day}: the source corrected its answer, {revisions.counts(changes)} rows; "
                    f"old and new values are in {CORRECTIONS.name}",
                )
            )
        if blocked:
            messages.append(
                (
                    "error",
                    f"{day}: not loaded into the normalized tables, which keep their previous "
                    f"version of the date: {blocked}",
                )
            )
        metadata = {
            "dagster/row_count": raw.height,
            "rows_per_category": counts,
            "api_calls": client.calls_made - calls_before,
            "answers_from_cache": self.api.cache_hits - cached_before,
            "content_hash": content,
            "content_changed": changed,
            "rows_to_quarantine": rejected.height,
            "corrected_rows": changes.height,
            "corrections": revisions.counts(changes),
            "blocked_by": blocked or "none",
            "sample_mode": self.sample_mode,
        }
        split = None if blocked else QuarantineSplit(content, loadable.drop("raw_item"), rejected)
        return DateReport(metadata, messages), split
