"""The normalizing steps for one auction date: grow the item and variety masters, load records.

Each loads only dates whose stored raw content it has not processed yet (the unchanged-content
rule, `flower_assets.transform.unchanged`), and leaves a blocked date's previous version in
place. Every date of the run is reported either way, with what the table now holds for it.
Each step plans a date when it comes to it, so it sees what the steps before it just wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

from flower_assets.market.history import record_digests
from flower_assets.steps.batch_logs import process_log
from flower_assets.steps.report import DateReport, Markdown
from flower_assets.transform import unchanged
from flower_assets.transform.normalize import auction_records, items_seen, varieties_seen
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.unchanged import Stored
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    REJECTED,
    BiddingFlowers,
    Table,
)


@dataclass(frozen=True)
class QuarantineSplit:
    """An auction date's stored raw rows split into loadable and rejected, for one content."""

    content_hash: str
    loadable: pl.DataFrame  # raw rows without raw_item, which nothing downstream reads
    rejected: pl.DataFrame


def split_of(
    wh: Warehouse, day: date, content_hash: str, split: QuarantineSplit | None
) -> QuarantineSplit:
    """The split of the date's stored content: the raw step's when it split exactly that
    content in this unit of work, else read back from the warehouse and split again."""
    if split is not None and split.content_hash == content_hash:
        return split
    loadable, rejected = split_loadable(wh.read_partition(RAW, day))
    return QuarantineSplit(content_hash, loadable.drop("raw_item"), rejected)


@dataclass
class DatesToLoad:
    """What a normalizing step does with each auction date of its run."""

    stored: dict[date, Stored]  # the raw content stored per date
    processed: dict[date, str]  # the raw content this step last loaded per date
    todo: list[date]  # dates to (re)compute now
    # Dates to compute that wait for an earlier step to load their content (it failed for them).
    waiting: dict[date, str]

    @classmethod
    def plan(cls, wh: Warehouse, days: list[date], asset: str, recompute: bool) -> DatesToLoad:
        """`recompute`: every loadable date counts as not processed yet.

        A step loads a date's content only once the steps before it loaded that same content:
        a date that failed in one step goes no further.
        """
        uploads, processes = wh.batch_logs(days[0], days[-1])
        stored = unchanged.stored_raw(uploads)
        processed = unchanged.processed(processes, asset)
        pending = unchanged.pending(days, stored, {} if recompute else processed)
        before = unchanged.NORMALIZING_ASSETS[: unchanged.NORMALIZING_ASSETS.index(asset)]
        loaded_before = {earlier: unchanged.processed(processes, earlier) for earlier in before}
        waiting = {
            day: earlier
            for day in reversed(pending)
            for earlier in reversed(before)
            if loaded_before[earlier].get(day) != stored[day].content_hash
        }
        todo = [day for day in pending if day not in waiting]
        return cls(stored, processed, todo, waiting)

    def status(self, day: date) -> dict[str, object]:
        """Per-date metadata: whether this run rewrote the date, and what the table holds."""
        loaded_now = day in self.todo
        holds = self.stored[day].content_hash if loaded_now else self.processed.get(day)
        blocked = self.stored[day].blocked_by if day in self.stored else None
        if blocked:
            why = f"{RAW.name}: {blocked}"
        elif day in self.waiting:
            why = f"{self.waiting[day]} has not loaded the date's answer"
        else:
            why = "none"
        return {
            "content_changed": loaded_now,
            "raw_content_hash": holds or "none: nothing loaded for this date",
            "blocked_by": why,
        }

    def messages(self, asset: str, day: date) -> list[tuple[str, str]]:
        if day in self.stored and self.stored[day].blocked_by and day not in self.todo:
            return [("warning", f"{asset} {day}: blocked, keeps its previous version")]
        if day in self.waiting:
            return [
                (
                    "warning",
                    f"{asset} {day}: keeps its previous version: {self.waiting[day]} has not "
                    "loaded the date's answer",
                )
            ]
        return []


def names_md(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


class Masters:
    """The item and variety masters as this unit of work last read them: read again after one
    of its master steps added rows (or failed), not for every date."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self._frames: dict[str, pl.DataFrame] = {}

    def read(self, table: Table) -> pl.DataFrame:
        if table.name not in self._frames:
            self._frames[table.name] = self.wh.read_table(table)
        return self._frames[table.name]

    def grown(self, table: Table) -> None:
        self._frames.pop(table.name, None)


class MasterStep:
    """Adds what each date saw to an only-growing master, one date per transaction.

    `dagster/row_count` of a master's date is the number of its rows that the date's auction
    records reference.
    """

    def __init__(
        self, wh: Warehouse, table: Table, run_id: str, recompute: bool, masters: Masters
    ) -> None:
        self.wh, self.table, self.run_id, self.recompute = wh, table, run_id, recompute
        self.masters = masters
        if table is FLOWER_TYPES:
            self.id_column, self.counted, self.named = (
                "flower_type_id",
                "new_items",
                "new_item_names",
            )
            self.upsert: Callable[[pl.DataFrame], None] = wh.upsert_items
        else:
            self.id_column, self.counted, self.named = (
                "flower_id",
                "new_varieties",
                "new_variety_names",
            )
            self.upsert = wh.upsert_varieties
        self.key = [
            c for c in table.columns if c not in ("id", "first_seen_date", "last_seen_date")
        ]
        self.known = wh.read_table(table).select(self.key)

    def seen_on(self, loadable: pl.DataFrame) -> pl.DataFrame:
        if self.table is FLOWER_TYPES:
            return items_seen(loadable)
        # The item master as the date's flower_types step left it.
        return varieties_seen(loadable, self.masters.read(FLOWER_TYPES))

    def load(self, day: date, split: QuarantineSplit | None = None) -> DateReport:
        """Load the date if its stored content is new to this master; `split`: the raw step's."""
        plan = DatesToLoad.plan(self.wh, [day], self.table.name, self.recompute)
        new_names: list[str] = []
        if day in plan.todo:
            content = plan.stored[day].content_hash
            try:
                with process_log(self.wh, self.run_id, self.table.name, day, content) as log:
                    seen = self.seen_on(split_of(self.wh, day, content, split).loadable)
                    new = seen.join(self.known, on=self.key, how="anti")
                    self.upsert(seen)
                    log.values[self.counted] = new.height
            except BaseException:
                self.masters.grown(self.table)  # whatever it wrote, read it again
                raise
            if new.height:
                self.masters.grown(self.table)
            self.known = pl.concat([self.known, new.select(self.key)])
            new_names = new["name"].to_list()
            rows = seen.height
        else:
            traded = self.wh.traded_varieties(day, day)
            rows = traded[self.id_column].n_unique()
        metadata = {
            "dagster/row_count": rows,
            self.counted: len(new_names),
            self.named: Markdown(names_md(new_names)),
            **plan.status(day),
        }
        return DateReport(metadata, plan.messages(self.table.name, day))


class RecordsStep:
    """Replaces each date's auction records and quarantine together: raw = loaded + rejected."""

    def __init__(self, wh: Warehouse, run_id: str, recompute: bool, masters: Masters) -> None:
        self.wh, self.run_id, self.recompute = wh, run_id, recompute
        self.masters = masters

    def load(self, day: date, split: QuarantineSplit | None = None) -> DateReport:
        """Load the date if its stored content is new to the records; `split`: the raw step's."""
        plan = DatesToLoad.plan(self.wh, [day], BIDDING.name, self.recompute)
        messages = plan.messages(BIDDING.name, day)
        if day in plan.todo:
            content = plan.stored[day].content_hash
            # The masters as the date's master steps left them.
            items, varieties = self.masters.read(FLOWER_TYPES), self.masters.read(FLOWERS)
            with process_log(self.wh, self.run_id, BIDDING.name, day, content) as log:
                split = split_of(self.wh, day, content, split)
                records = BiddingFlowers.validate(auction_records(split.loadable, items, varieties))
                rejected = split.rejected
                digests = record_digests_by_category(records, items, varieties)
                self.wh.replace_records(day, records, rejected, digests)
                log.values["auction_rows_affected"] = records.height
            rows = records.height
        else:
            rows = self.wh.read_partition(BIDDING, day).height
            rejected = self.wh.read_partition(REJECTED, day)
        reasons = dict(Counter(rejected["reason"].to_list()))
        if day in plan.todo and rejected.height:
            messages.append(
                (
                    "warning",
                    f"{day}: {rejected.height} rows quarantined in {REJECTED.name}: {reasons}",
                )
            )
        metadata = {
            "dagster/row_count": rows,
            "rows_quarantined": rejected.height,
            "rejected_by_reason": reasons,
            **plan.status(day),
        }
        return DateReport(metadata, messages)


def record_digests_by_category(
    records: pl.DataFrame, items: pl.DataFrame, varieties: pl.DataFrame
) -> pl.DataFrame:
    """The records' digests per category, written with them (`market.history`)."""
    categories = varieties.join(items, left_on="flower_type_id", right_on="id")
    return record_digests(
        records.join(
            categories.select(pl.col("id").alias("flower_id"), "flower_gubn"), on="flower_id"
        )
    )
