"""The warehouse on SQLite and PostgreSQL: DDL from the models, atomic partitions, growing masters."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import polars as pl
import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from flower_assets.source.responses import ResponseCache
from flower_assets.warehouse.database import Warehouse, display_url
from flower_assets.warehouse.schemas import (
    API_RESPONSES,
    BIDDING,
    FLOWER_TYPES,
    FLOWERS,
    RAW,
    REJECTED,
    TABLES,
)
from flower_assets.warehouse.tables import TABLES_BY_NAME

D1, D2 = date(2024, 5, 10), date(2024, 5, 11)


def raw_frame(day: date, names: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "auction_date": [day] * len(names),
            "flower_gubn": ["절화"] * len(names),
            "flower_type": ["장미"] * len(names),
            "flower_name": names,
            "grade": ["특1"] * len(names),
            "quantity": [10] * len(names),
            "max_price": [3] * len(names),
            "min_price": [1] * len(names),
            "avg_price": [2] * len(names),
            "total_price": [20] * len(names),
            "raw_item": [f'{{"goodName":"{n}"}}' for n in names],
            "fetched_at": [datetime(2024, 5, 10, 12, tzinfo=UTC)] * len(names),
        },
        schema=RAW.polars_schema,
    )


def test_tables_come_from_the_models():
    ddl = str(CreateTable(TABLES_BY_NAME[BIDDING.name]).compile(dialect=postgresql.dialect()))
    assert "UNIQUE (auction_date, flower_id, grade)" in ddl
    assert "FOREIGN KEY(flower_id) REFERENCES flowers (id)" in ddl
    assert "quantity BIGINT NOT NULL" in ddl
    raw = str(CreateTable(TABLES_BY_NAME[RAW.name]).compile(dialect=sqlite.dialect()))
    assert "quantity INTEGER," in raw and "raw_item TEXT NOT NULL" in raw


def test_display_url_hides_the_password():
    assert (
        display_url("postgresql://flower:s3cret@db:5432/w") == "postgresql://flower:***@db:5432/w"
    )


def test_round_trip_keeps_types_and_values(warehouse_url):
    Warehouse.open(warehouse_url).close()  # first use creates the tables
    with Warehouse.open(warehouse_url) as wh:  # later uses find them
        frame = raw_frame(D1, ["a", "b", "it's; DROP TABLE flowers; --", "🌹"])
        wh.replace_partition(D1, {RAW: frame})
        back = wh.read_partition(RAW, D1)
    assert back.sort("flower_name").equals(frame.sort("flower_name"))


def test_replacing_a_partition_touches_only_that_date(warehouse_url):
    with Warehouse.open(warehouse_url) as wh:
        wh.replace_partition(D1, {RAW: raw_frame(D1, ["a", "b"])})
        wh.replace_partition(D2, {RAW: raw_frame(D2, ["c"])})
        wh.replace_partition(D1, {RAW: raw_frame(D1, ["x"])})
        assert wh.read_partition(RAW, D1)["flower_name"].to_list() == ["x"]
        assert wh.read_partition(RAW, D2)["flower_name"].to_list() == ["c"]


def test_a_failing_write_leaves_the_previous_partition_whole(warehouse_url):
    with Warehouse.open(warehouse_url) as wh:
        wh.replace_partition(D1, {RAW: raw_frame(D1, ["a", "b"])})
        broken = raw_frame(D1, ["x"]).with_columns(pl.lit(None, pl.String).alias("raw_item"))
        with pytest.raises(Exception, match=r"(?i)null"):
            # The first table's new rows are written, then the second fails: both roll back.
            wh.replace_partition(
                D1, {REJECTED: pl.DataFrame(schema=REJECTED.polars_schema), RAW: broken}
            )
        assert sorted(wh.read_partition(RAW, D1)["flower_name"].to_list()) == ["a", "b"]


def test_masters_only_grow_and_keep_their_ids(warehouse_url):
    items = pl.DataFrame(
        {
            "flower_gubn": ["절화", "난"],
            "name": ["장미", "호접란"],
            "first_seen_date": [D1, D1],
            "last_seen_date": [D1, D1],
        }
    )
    with Warehouse.open(warehouse_url) as wh:
        wh.upsert_items(items)
        first = wh.read_table(FLOWER_TYPES)
        # Seen again later, and once earlier (a backfill): dates widen, ids stay, no duplicates.
        wh.upsert_items(
            items.with_columns(
                pl.lit(D2).alias("first_seen_date"), pl.lit(D2).alias("last_seen_date")
            )
        )
        wh.upsert_items(
            items.head(1).with_columns(pl.lit(date(2024, 1, 2)).alias("first_seen_date"))
        )
        after = wh.read_table(FLOWER_TYPES)
        rose_id = first.filter(pl.col("name") == "장미")["id"].item()
        wh.upsert_varieties(
            pl.DataFrame(
                {
                    "flower_type_id": [rose_id],
                    "name": ["레드"],
                    "first_seen_date": [D1],
                    "last_seen_date": [D1],
                }
            )
        )
        wh.upsert_varieties(
            pl.DataFrame(
                {
                    "flower_type_id": [rose_id],
                    "name": ["레드"],
                    "first_seen_date": [D2],
                    "last_seen_date": [D2],
                }
            )
        )
        varieties = wh.read_table(FLOWERS)
    assert after["id"].to_list() == first["id"].to_list()
    rose = after.filter(pl.col("name") == "장미").row(0, named=True)
    assert (rose["first_seen_date"], rose["last_seen_date"]) == (date(2024, 1, 2), D2)
    assert varieties.height == 1 and varieties["last_seen_date"].item() == D2


def test_every_table_exists_after_first_use(warehouse_url):
    with Warehouse.open(warehouse_url) as wh:
        for table in TABLES:
            assert wh.read_table(table).height == 0


def test_a_variety_must_point_to_an_existing_item(warehouse_url):
    with Warehouse.open(warehouse_url) as wh:
        orphan = pl.DataFrame(
            {
                "flower_type_id": [999],
                "name": ["고아"],
                "first_seen_date": [D1],
                "last_seen_date": [D1],
            }
        )
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            wh.upsert_varieties(orphan)
        assert wh.read_table(FLOWERS).height == 0


def cached_pages(body: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "auction_date": [D1],
            "flower_gubn": ["절화"],
            "page": [1],
            "page_size": [5000],
            "body": [body],
            "content_hash": [body],
            "fetched_at": [datetime(2024, 5, 10, tzinfo=UTC)],
        },
        schema=API_RESPONSES.polars_schema,
    )


def test_two_runs_caching_the_same_answer_at_once_keep_the_later_one(warehouse_url, monkeypatch):
    with Warehouse.open(warehouse_url) as wh:
        kind = type(wh.db)
    inserted, release = threading.Event(), threading.Event()
    insert = kind.insert

    def insert_and_hold(self, cursor, table, frame):
        insert(self, cursor, table, frame)
        if threading.current_thread().name == "earlier":  # rows in, transaction still open
            inserted.set()
            release.wait(30)

    monkeypatch.setattr(kind, "insert", insert_and_hold)
    errors: list[BaseException] = []

    def cache(body: str) -> None:
        # Each run has its own connection, as two processes would.
        try:
            with Warehouse.open(warehouse_url) as wh:
                ResponseCache(wh).replace(D1, "절화", cached_pages(body))
        except BaseException as exc:
            errors.append(exc)

    earlier = threading.Thread(target=cache, args=("earlier",), name="earlier")
    earlier.start()
    assert inserted.wait(30), errors
    later = threading.Thread(target=cache, args=("later",), name="later")
    later.start()
    later.join(0.5)  # the later run waits for the earlier one's transaction
    release.set()
    earlier.join(30)
    later.join(30)
    assert errors == []
    with Warehouse.open(warehouse_url) as wh:
        assert ResponseCache(wh).pages(D1, "절화")["body"].to_list() == ["later"]
