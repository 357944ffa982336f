"""Each warehouse table declared once, as a pandera model.

From these models come validation, the column schema shown in Dagster's Columns tab, and the
SQLAlchemy tables (`tables.py`) that the migrations and every warehouse statement are checked
against or built from. Table-level constraints live in each model's `Config.metadata`: the
primary key, unique keys, foreign keys and the partition column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl


def _amount(field: str, korean: str, what: str, nullable: bool = False) -> pa.Field:
    return pa.Field(ge=0, nullable=nullable, description=f"{what} ({korean}, API field {field})")


class PublicBiddingFlowers(pa.DataFrameModel):
    """Raw layer: one row per API item, as received, under the auction date that fetched it."""

    auction_date: pl.Date = pa.Field(
        description="Auction date asked for (경매일자, API parameter baseDate)"
    )
    flower_gubn: str = pa.Field(
        description="Category asked for: 절화/관엽/난/춘란 (화훼부류, API field flowerGubn)"
    )
    flower_type: str = pa.Field(
        nullable=True, description="Item as received (품목명, API field pumName)"
    )
    flower_name: str = pa.Field(
        nullable=True, description="Variety as received (품종명, API field goodName)"
    )
    grade: str = pa.Field(nullable=True, description="Grade as received (등급, API field lvNm)")
    quantity: pl.Int64 = pa.Field(
        nullable=True,
        description="Quantity in bundles (속) or pots (분), null if not an integer (거래량, API field totQty)",
    )
    max_price: pl.Int64 = pa.Field(
        nullable=True,
        description="Highest price in won, null if not an integer (최고가, API field maxAmt)",
    )
    min_price: pl.Int64 = pa.Field(
        nullable=True,
        description="Lowest price in won, null if not an integer (최저가, API field minAmt)",
    )
    avg_price: pl.Int64 = pa.Field(
        nullable=True,
        description="Average price in won, null if not an integer (평균가, API field avgAmt)",
    )
    total_price: pl.Int64 = pa.Field(
        nullable=True,
        description="Total amount in won, null if not an integer (총금액, API field totAmt)",
    )
    raw_item: str = pa.Field(description="The item's JSON text exactly as the API sent it")
    fetched_at: pl.Datetime(time_zone="UTC") = pa.Field(
        description="When the answer was fetched (UTC)"
    )

    class Config:
        strict = True
        metadata = {
            "table": "public_bidding_flowers",
            "partition_column": "auction_date",
            "indexes": [("auction_date",)],
        }


class FlowerTypes(pa.DataFrameModel):
    """Item master (품목): one row per category and item name. Only grows; ids never change."""

    id: pl.Int64 = pa.Field(unique=True, description="Item id, stable forever")
    flower_gubn: str = pa.Field(
        isin=["절화", "관엽", "난", "춘란"], description="Category (화훼부류, API field flowerGubn)"
    )
    name: str = pa.Field(
        str_length={"min_value": 1}, description="Item name (품목명, API field pumName)"
    )
    first_seen_date: pl.Date = pa.Field(
        nullable=True,
        description="First auction date with a record of the item; null if no record is left",
    )
    last_seen_date: pl.Date = pa.Field(
        nullable=True,
        description="Last auction date with a record of the item; null if no record is left",
    )

    class Config:
        strict = True
        unique = ["flower_gubn", "name"]
        metadata = {
            "table": "flower_types",
            "primary_key": "id",
            "unique": [("flower_gubn", "name")],
        }


class Flowers(pa.DataFrameModel):
    """Variety master (품종): one row per item and variety name. Only grows; ids never change."""

    id: pl.Int64 = pa.Field(unique=True, description="Variety id, stable forever")
    flower_type_id: pl.Int64 = pa.Field(description="The variety's item (flower_types.id)")
    name: str = pa.Field(
        str_length={"min_value": 1}, description="Variety name (품종명, API field goodName)"
    )
    first_seen_date: pl.Date = pa.Field(
        nullable=True,
        description="First auction date with a record of the variety; null if no record is left",
    )
    last_seen_date: pl.Date = pa.Field(
        nullable=True,
        description="Last auction date with a record of the variety; null if no record is left",
    )

    class Config:
        strict = True
        unique = ["flower_type_id", "name"]
        metadata = {
            "table": "flowers",
            "primary_key": "id",
            "unique": [("flower_type_id", "name")],
            "foreign_keys": {"flower_type_id": "flower_types"},
        }


class BiddingFlowers(pa.DataFrameModel):
    """Auction records: one row per auction date, variety and grade."""

    auction_date: pl.Date = pa.Field(description="Auction date (경매일자)")
    flower_id: pl.Int64 = pa.Field(description="Variety (flowers.id)")
    grade: str = pa.Field(str_length={"min_value": 1}, description="Grade (등급, API field lvNm)")
    quantity: pl.Int64 = pa.Field(
        gt=0, description="Quantity in bundles (속) or pots (분) (거래량, API field totQty)"
    )
    max_price: pl.Int64 = _amount("maxAmt", "최고가", "Highest price in won")
    min_price: pl.Int64 = _amount("minAmt", "최저가", "Lowest price in won")
    avg_price: pl.Int64 = _amount("avgAmt", "평균가", "Average price in won")
    total_price: pl.Int64 = _amount("totAmt", "총금액", "Total amount in won")

    class Config:
        strict = True
        unique = ["auction_date", "flower_id", "grade"]
        metadata = {
            "table": "bidding_flowers",
            "partition_column": "auction_date",
            "unique": [("auction_date", "flower_id", "grade")],
            "foreign_keys": {"flower_id": "flowers"},
            # A variety's first and last seen dates are read from its records by this index.
            "indexes": [("flower_id", "auction_date")],
        }


class RejectedBiddingFlowers(pa.DataFrameModel):
    """Quarantine: raw rows not loaded into bidding_flowers, each with the reason why."""

    auction_date: pl.Date = pa.Field(description="Auction date asked for (경매일자)")
    flower_gubn: str = pa.Field(description="Category asked for (화훼부류)")
    raw_item: str = pa.Field(description="The item's JSON text exactly as the API sent it")
    reason: str = pa.Field(
        description="Machine-readable reason, e.g. non_numeric_amount, duplicate_key"
    )
    reason_text: str = pa.Field(description="The reason as a sentence a person can act on")

    class Config:
        strict = True
        metadata = {
            "table": "rejected_bidding_flowers",
            "partition_column": "auction_date",
            "indexes": [("auction_date",)],
        }


def _was(what: str, korean: str) -> tuple[pa.Field, pa.Field]:
    return (
        pa.Field(
            nullable=True, description=f"{what} before the correction ({korean}); null if added"
        ),
        pa.Field(
            nullable=True, description=f"{what} after the correction ({korean}); null if removed"
        ),
    )


class AuctionCorrections(pa.DataFrameModel):
    """What each re-fetch changed in a stored auction date's answer, row by row; never rewritten.

    A removed and an added row with the same record key (category, item, variety, grade) are one
    `changed` row. Undoing a date's corrections, newest first, on its raw rows gives back every
    superseded answer exactly.
    """

    id: pl.Int64 = pa.Field(unique=True, description="Correction row id, in the order recorded")
    auction_date: pl.Date = pa.Field(description="Auction date whose answer changed (경매일자)")
    flower_gubn: str = pa.Field(description="Category (화훼부류)")
    item_name: str = pa.Field(nullable=True, description="Item (품목명), canonical form")
    variety_name: str = pa.Field(nullable=True, description="Variety (품종명), canonical form")
    grade: str = pa.Field(nullable=True, description="Grade (등급), canonical form")
    change: str = pa.Field(
        isin=["added", "removed", "changed"],
        description="added (only in the new answer), removed (only in the old), or changed",
    )
    old_quantity: pl.Int64 = _was("Quantity", "거래량")[0]
    new_quantity: pl.Int64 = _was("Quantity", "거래량")[1]
    old_max_price: pl.Int64 = _was("Highest price in won", "최고가")[0]
    new_max_price: pl.Int64 = _was("Highest price in won", "최고가")[1]
    old_min_price: pl.Int64 = _was("Lowest price in won", "최저가")[0]
    new_min_price: pl.Int64 = _was("Lowest price in won", "최저가")[1]
    old_avg_price: pl.Int64 = _was("Average price in won", "평균가")[0]
    new_avg_price: pl.Int64 = _was("Average price in won", "평균가")[1]
    old_total_price: pl.Int64 = _was("Total amount in won", "총금액")[0]
    new_total_price: pl.Int64 = _was("Total amount in won", "총금액")[1]
    old_raw_item: str = _was("The item's JSON text exactly as the API sent it", "원문")[0]
    new_raw_item: str = _was("The item's JSON text exactly as the API sent it", "원문")[1]
    old_content_hash: str = pa.Field(description="content_hash of the superseded answer")
    new_content_hash: str = pa.Field(description="content_hash of the answer that replaced it")
    run_id: str = pa.Field(description="Dagster run that fetched the new answer")
    corrected_at: pl.Datetime(time_zone="UTC") = pa.Field(
        description="When the new answer was stored (UTC)"
    )

    class Config:
        strict = True
        metadata = {
            "table": "auction_corrections",
            "primary_key": "id",
            "indexes": [("auction_date", "item_name")],
        }


class FlowerBatchUploadLogs(pa.DataFrameModel):
    """One row per run and auction date fetched: what came in and where it went."""

    id: pl.Int64 = pa.Field(unique=True, description="Log row id")
    run_id: str = pa.Field(description="Dagster run id")
    auction_date: pl.Date = pa.Field(description="Auction date fetched")
    items_received: pl.Int64 = pa.Field(ge=0, description="API items received (raw rows)")
    items_loaded: pl.Int64 = pa.Field(ge=0, description="Rows fit to load into bidding_flowers")
    items_rejected: pl.Int64 = pa.Field(
        ge=0, description="Rows kept aside in rejected_bidding_flowers"
    )
    api_calls: pl.Int64 = pa.Field(ge=0, description="Calls made to the aT API, retries included")
    status: str = pa.Field(
        isin=["success", "blocked", "failed"],
        description="success; blocked (rows stored, but a blocking check failed: the normalized "
        "tables keep their previous version of the date); or failed",
    )
    error_text: str = pa.Field(
        nullable=True,
        description="Why it failed or is blocked (never contains the service key)",
    )
    content_hash: str = pa.Field(
        nullable=True,
        description="SHA-256 of the date's raw items: equal hashes, equal content",
    )
    started_at: pl.Datetime(time_zone="UTC") = pa.Field(description="Start (UTC)")
    finished_at: pl.Datetime(time_zone="UTC") = pa.Field(description="End (UTC)")
    raw_checks: str = pa.Field(
        nullable=True,
        description="The raw checks' outcomes on this answer, judged when it was fetched (JSON): "
        "the raw checks of the same run report them instead of decoding the rows again",
    )

    class Config:
        strict = True
        metadata = {
            "table": "flower_batch_upload_logs",
            "primary_key": "id",
            "indexes": [("auction_date",), ("run_id",)],
        }


class FlowerBatchProcessLogs(pa.DataFrameModel):
    """One row per run, auction date and normalizing asset: what changed in the tables."""

    id: pl.Int64 = pa.Field(unique=True, description="Log row id")
    run_id: str = pa.Field(description="Dagster run id")
    auction_date: pl.Date = pa.Field(description="Auction date processed")
    asset: str = pa.Field(
        isin=["flower_types", "flowers", "bidding_flowers"],
        description="The asset that processed it",
    )
    new_items: pl.Int64 = pa.Field(ge=0, description="Items added to flower_types")
    new_varieties: pl.Int64 = pa.Field(ge=0, description="Varieties added to flowers")
    auction_rows_affected: pl.Int64 = pa.Field(ge=0, description="bidding_flowers rows written")
    status: str = pa.Field(isin=["success", "failed"], description="success or failed")
    error_text: str = pa.Field(
        nullable=True, description="Why it failed (never contains the service key)"
    )
    raw_content_hash: str = pa.Field(
        nullable=True, description="content_hash of the raw rows this step processed"
    )
    started_at: pl.Datetime(time_zone="UTC") = pa.Field(description="Start (UTC)")
    finished_at: pl.Datetime(time_zone="UTC") = pa.Field(description="End (UTC)")

    class Config:
        strict = True
        metadata = {
            "table": "flower_batch_process_logs",
            "primary_key": "id",
            "indexes": [("auction_date",), ("run_id",)],
        }


class ApiResponses(pa.DataFrameModel):
    """Raw response cache: every successful answer, page by page, exactly as received."""

    auction_date: pl.Date = pa.Field(description="Auction date asked for (baseDate)")
    flower_gubn: str = pa.Field(description="Category asked for")
    page: pl.Int64 = pa.Field(ge=1, description="currentPage")
    page_size: pl.Int64 = pa.Field(ge=1, description="countPerPage")
    body: str = pa.Field(description="The answer's body as received (JSON text)")
    content_hash: str = pa.Field(description="SHA-256 of the body")
    fetched_at: pl.Datetime(time_zone="UTC") = pa.Field(description="When it was fetched (UTC)")

    class Config:
        strict = True
        metadata = {
            "table": "api_responses",
            "partition_column": "auction_date",
            "unique": [("auction_date", "flower_gubn", "page")],
        }


class ApiCallCounts(pa.DataFrameModel):
    """Calls made to the aT API per service key and KST day: what the daily quota counts."""

    key_fingerprint: str = pa.Field(
        description="First 12 hex digits of SHA-256 of the key; never the key"
    )
    kst_date: pl.Date = pa.Field(description="Day in Asia/Seoul; the quota resets at its midnight")
    calls: pl.Int64 = pa.Field(ge=0, description="Calls made, retries and failed calls included")

    class Config:
        strict = True
        metadata = {"table": "api_call_counts", "unique": [("key_fingerprint", "kst_date")]}


class WarehouseSource(pa.DataFrameModel):
    """Which source fills this warehouse: the aT API or the generated sample days, never both."""

    slot: pl.Int64 = pa.Field(isin=[1], description="Always 1: the table holds one row")
    source: str = pa.Field(
        isin=["aT API", "sample data"], description="aT API, or sample data (no FLOWER_API_KEY)"
    )
    claimed_at: pl.Datetime(time_zone="UTC") = pa.Field(
        description="When the first run wrote to this warehouse (UTC)"
    )

    class Config:
        strict = True
        metadata = {"table": "warehouse_source", "unique": [("slot",)]}


def _price(description: str) -> pa.Field:
    return pa.Field(ge=0, description=f"{description}, in won")


def _change(what: str, reference: str, percent: bool = False) -> pa.Field:
    unit = "in percent of the reference, 2 decimals" if percent else "in won"
    return pa.Field(
        nullable=True, description=f"{what} minus {reference}, {unit}; null without one"
    )


class DailyItemPrices(pa.DataFrameModel):
    """Market layer: one row per auction date and item that traded (품목별 일별 시세).

    These column names are a contract with the service that reads them.
    """

    auction_date: pl.Date = pa.Field(description="Auction date (경매일자)")
    flower_type_id: pl.Int64 = pa.Field(description="Item (flower_types.id)")
    flower_gubn: str = pa.Field(description="Category (화훼부류)")
    name: str = pa.Field(description="Item name (품목명)")
    quantity: pl.Int64 = pa.Field(gt=0, description="Σ quantity of the item's records (거래량)")
    total_price: pl.Int64 = _price("Σ total_price of the item's records (총금액)")
    avg_price: pl.Int64 = _price(
        "Quantity-weighted average price: round(total_price / quantity), half up"
    )
    varieties_traded: pl.Int64 = pa.Field(gt=0, description="Varieties traded on the date")
    grades_traded: pl.Int64 = pa.Field(gt=0, description="Distinct grades traded on the date")
    prev_auction_date: pl.Date = pa.Field(
        nullable=True,
        description="The item's previous auction date (the latest earlier date it traded, "
        "within 365 days); null if none",
    )
    prev_avg_price: pl.Int64 = pa.Field(
        nullable=True, description="avg_price on prev_auction_date, in won"
    )
    change_vs_prev: pl.Int64 = _change("avg_price", "prev_avg_price")
    change_vs_prev_pct: pl.Float64 = _change("avg_price", "prev_avg_price", percent=True)
    avg_price_28d: pl.Int64 = pa.Field(
        nullable=True,
        description="Quantity-weighted average price over the 28 days before the date "
        "(D−28 … D−1), in won; null if the item did not trade then",
    )
    change_vs_28d: pl.Int64 = _change("avg_price", "avg_price_28d")
    change_vs_28d_pct: pl.Float64 = _change("avg_price", "avg_price_28d", percent=True)

    class Config:
        strict = True
        unique = ["auction_date", "flower_type_id"]
        metadata = {
            "table": "daily_item_prices",
            "partition_column": "auction_date",
            "unique": [("auction_date", "flower_type_id")],
            "foreign_keys": {"flower_type_id": "flower_types"},
        }


class VarietyPriceChanges(pa.DataFrameModel):
    """Market layer: one row per auction date, variety and grade: today against last time."""

    auction_date: pl.Date = pa.Field(description="Auction date (경매일자)")
    flower_gubn: str = pa.Field(description="Category (화훼부류)")
    flower_type_id: pl.Int64 = pa.Field(description="Item (flower_types.id)")
    item_name: str = pa.Field(description="Item name (품목명)")
    flower_id: pl.Int64 = pa.Field(description="Variety (flowers.id)")
    variety_name: str = pa.Field(description="Variety name (품종명)")
    grade: str = pa.Field(description="Grade (등급)")
    quantity: pl.Int64 = pa.Field(gt=0, description="Quantity traded (거래량)")
    avg_price: pl.Int64 = _price("Average price of the date (평균가)")
    prev_auction_date: pl.Date = pa.Field(
        nullable=True,
        description="The previous auction date on which this variety and grade traded "
        "(within 365 days); null if none",
    )
    prev_avg_price: pl.Int64 = pa.Field(
        nullable=True, description="avg_price on prev_auction_date, in won"
    )
    change_vs_prev: pl.Int64 = _change("avg_price", "prev_avg_price")
    change_vs_prev_pct: pl.Float64 = _change("avg_price", "prev_avg_price", percent=True)
    median_price_28d: pl.Int64 = pa.Field(
        nullable=True,
        description="Median of the variety and grade's average prices over the 28 days before "
        "the date (D−28 … D−1), half up to won; null if it did not trade then",
    )

    class Config:
        strict = True
        unique = ["auction_date", "flower_id", "grade"]
        metadata = {
            "table": "variety_price_changes",
            "partition_column": "auction_date",
            "unique": [("auction_date", "flower_id", "grade")],
            "foreign_keys": {"flower_id": "flowers"},
        }


class CategoryPriceIndex(pa.DataFrameModel):
    """Market layer: a chained Törnqvist price index per auction date and category."""

    auction_date: pl.Date = pa.Field(description="Auction date (경매일자)")
    flower_gubn: str = pa.Field(description="Category (화훼부류)")
    index_value: pl.Float64 = pa.Field(
        gt=0, description="The index: 100 on base_date, chained through matched pairs"
    )
    chain_link: pl.Float64 = pa.Field(
        description="ln(index / index on the category's previous auction date), from the "
        "matched variety-and-grade pairs (the formula: flower_assets/market/price_index.py); "
        "0 when none matched"
    )
    matched_pairs: pl.Int64 = pa.Field(
        ge=0,
        description="Variety-and-grade pairs traded (at a positive price) on both this and "
        "the category's previous auction date",
    )
    quantity_share: pl.Float64 = pa.Field(
        ge=0, le=1, description="The matched pairs' share of the category's quantity on the date"
    )
    base_date: pl.Date = pa.Field(description="The date on which the index is 100")

    class Config:
        strict = True
        unique = ["auction_date", "flower_gubn"]
        metadata = {
            "table": "category_price_index",
            "partition_column": "auction_date",
            "unique": [("auction_date", "flower_gubn")],
        }


class RecordDigests(pa.DataFrameModel):
    """Per auction date and category: a digest of its auction records, written with them."""

    auction_date: pl.Date = pa.Field(description="Auction date (경매일자)")
    flower_gubn: str = pa.Field(description="Category (화훼부류)")
    records: pl.Int64 = pa.Field(gt=0, description="Auction records of the date and category")
    digest: str = pa.Field(
        description="SHA-256 of the records as the market layer reads them (variety, grade, "
        "quantity, average and total price), independent of their order"
    )

    class Config:
        strict = True
        unique = ["auction_date", "flower_gubn"]
        metadata = {
            "table": "record_digests",
            "partition_column": "auction_date",
            "unique": [("auction_date", "flower_gubn")],
        }


class MarketBuilds(pa.DataFrameModel):
    """Per market date: the history its market rows were built from (flower_assets.market.history)."""

    auction_date: pl.Date = pa.Field(description="Auction date (경매일자)")
    history_digest: str = pa.Field(
        description="Digest of every auction record the date's market rows depend on, as it "
        "was when they were built; the date is stale when the records now give another"
    )
    run_id: str = pa.Field(description="The Dagster run that built the date")
    built_at: pl.Datetime(time_zone="UTC") = pa.Field(description="When (UTC)")

    class Config:
        strict = True
        unique = ["auction_date"]
        metadata = {
            "table": "market_builds",
            "partition_column": "auction_date",
            "unique": [("auction_date",)],
        }


@dataclass(frozen=True)
class Table:
    """A warehouse table as its model declares it."""

    model: type[pa.DataFrameModel]

    @property
    def name(self) -> str:
        return self.model.Config.metadata["table"]

    @property
    def meta(self) -> dict:
        return self.model.Config.metadata

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def columns(self) -> list[str]:
        return list(self.schema.columns)

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        return {name: column.dtype.type for name, column in self.schema.columns.items()}

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema)


RAW = Table(PublicBiddingFlowers)
FLOWER_TYPES = Table(FlowerTypes)
FLOWERS = Table(Flowers)
BIDDING = Table(BiddingFlowers)
REJECTED = Table(RejectedBiddingFlowers)
CORRECTIONS = Table(AuctionCorrections)
UPLOAD_LOGS = Table(FlowerBatchUploadLogs)
PROCESS_LOGS = Table(FlowerBatchProcessLogs)
API_RESPONSES = Table(ApiResponses)
API_CALL_COUNTS = Table(ApiCallCounts)
WAREHOUSE_SOURCE = Table(WarehouseSource)
DAILY_ITEM_PRICES = Table(DailyItemPrices)
VARIETY_PRICE_CHANGES = Table(VarietyPriceChanges)
CATEGORY_PRICE_INDEX = Table(CategoryPriceIndex)
RECORD_DIGESTS = Table(RecordDigests)
MARKET_BUILDS = Table(MarketBuilds)
MARKET_TABLES: tuple[Table, ...] = (DAILY_ITEM_PRICES, VARIETY_PRICE_CHANGES, CATEGORY_PRICE_INDEX)
TABLES: tuple[Table, ...] = (
    RAW,
    FLOWER_TYPES,
    FLOWERS,
    BIDDING,
    REJECTED,
    CORRECTIONS,
    UPLOAD_LOGS,
    PROCESS_LOGS,
    API_RESPONSES,
    API_CALL_COUNTS,
    WAREHOUSE_SOURCE,
    *MARKET_TABLES,
    RECORD_DIGESTS,
    MARKET_BUILDS,
)
