"""Baseline: the warehouse as it was before migrations (commit 69b3f89), table for table.

A warehouse created by that code (`CREATE TABLE IF NOT EXISTS` from the pandera models) already
is this revision: `flower-assets db upgrade` compares it with `baseline_metadata` and stamps it.
Frozen: the schema changes in later revisions, never here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TEXT = sa.Text()
# SQLite keeps dates and timestamps as ISO text.
DATE = sa.Date().with_variant(sa.Text(), "sqlite")
TIMESTAMPTZ = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")

# The names PostgreSQL gave the constraints the old DDL left unnamed. SQLite kept them unnamed.
POSTGRES_NAMES = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
}


def baseline_metadata(dialect: str) -> sa.MetaData:
    """The baseline's tables as the given dialect ("sqlite" or "postgresql") holds them."""
    metadata = sa.MetaData(naming_convention=POSTGRES_NAMES if dialect == "postgresql" else {})
    sa.Table(
        "public_bidding_flowers",
        metadata,
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("flower_type", TEXT, nullable=True),
        sa.Column("flower_name", TEXT, nullable=True),
        sa.Column("grade", TEXT, nullable=True),
        sa.Column("quantity", BIGINT, nullable=True),
        sa.Column("max_price", BIGINT, nullable=True),
        sa.Column("min_price", BIGINT, nullable=True),
        sa.Column("avg_price", BIGINT, nullable=True),
        sa.Column("total_price", BIGINT, nullable=True),
        sa.Column("raw_item", TEXT, nullable=False),
        sa.Column("fetched_at", TIMESTAMPTZ, nullable=False),
        sa.Index("public_bidding_flowers_auction_date_idx", "auction_date"),
    )
    sa.Table(
        "flower_types",
        metadata,
        sa.Column("id", BIGINT, sa.Identity(), primary_key=True),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("first_seen_date", DATE, nullable=True),
        sa.Column("last_seen_date", DATE, nullable=True),
        sa.UniqueConstraint("flower_gubn", "name"),
    )
    sa.Table(
        "flowers",
        metadata,
        sa.Column("id", BIGINT, sa.Identity(), primary_key=True),
        sa.Column("flower_type_id", BIGINT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("first_seen_date", DATE, nullable=True),
        sa.Column("last_seen_date", DATE, nullable=True),
        sa.UniqueConstraint("flower_type_id", "name"),
        sa.ForeignKeyConstraint(["flower_type_id"], ["flower_types.id"]),
    )
    sa.Table(
        "bidding_flowers",
        metadata,
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_id", BIGINT, nullable=False),
        sa.Column("grade", TEXT, nullable=False),
        sa.Column("quantity", BIGINT, nullable=False),
        sa.Column("max_price", BIGINT, nullable=False),
        sa.Column("min_price", BIGINT, nullable=False),
        sa.Column("avg_price", BIGINT, nullable=False),
        sa.Column("total_price", BIGINT, nullable=False),
        sa.UniqueConstraint("auction_date", "flower_id", "grade"),
        sa.ForeignKeyConstraint(["flower_id"], ["flowers.id"]),
        sa.Index("bidding_flowers_flower_id_auction_date_idx", "flower_id", "auction_date"),
    )
    sa.Table(
        "rejected_bidding_flowers",
        metadata,
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("raw_item", TEXT, nullable=False),
        sa.Column("reason", TEXT, nullable=False),
        sa.Column("reason_text", TEXT, nullable=False),
        sa.Index("rejected_bidding_flowers_auction_date_idx", "auction_date"),
    )
    sa.Table(
        "auction_corrections",
        metadata,
        sa.Column("id", BIGINT, sa.Identity(), primary_key=True),
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("item_name", TEXT, nullable=True),
        sa.Column("variety_name", TEXT, nullable=True),
        sa.Column("grade", TEXT, nullable=True),
        sa.Column("change", TEXT, nullable=False),
        sa.Column("old_quantity", BIGINT, nullable=True),
        sa.Column("new_quantity", BIGINT, nullable=True),
        sa.Column("old_max_price", BIGINT, nullable=True),
        sa.Column("new_max_price", BIGINT, nullable=True),
        sa.Column("old_min_price", BIGINT, nullable=True),
        sa.Column("new_min_price", BIGINT, nullable=True),
        sa.Column("old_avg_price", BIGINT, nullable=True),
        sa.Column("new_avg_price", BIGINT, nullable=True),
        sa.Column("old_total_price", BIGINT, nullable=True),
        sa.Column("new_total_price", BIGINT, nullable=True),
        sa.Column("old_raw_item", TEXT, nullable=True),
        sa.Column("new_raw_item", TEXT, nullable=True),
        sa.Column("old_content_hash", TEXT, nullable=False),
        sa.Column("new_content_hash", TEXT, nullable=False),
        sa.Column("run_id", TEXT, nullable=False),
        sa.Column("corrected_at", TIMESTAMPTZ, nullable=False),
        sa.Index("auction_corrections_auction_date_item_name_idx", "auction_date", "item_name"),
    )
    sa.Table(
        "flower_batch_upload_logs",
        metadata,
        sa.Column("id", BIGINT, sa.Identity(), primary_key=True),
        sa.Column("run_id", TEXT, nullable=False),
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("items_received", BIGINT, nullable=False),
        sa.Column("items_loaded", BIGINT, nullable=False),
        sa.Column("items_rejected", BIGINT, nullable=False),
        sa.Column("api_calls", BIGINT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("error_text", TEXT, nullable=True),
        sa.Column("content_hash", TEXT, nullable=True),
        sa.Column("started_at", TIMESTAMPTZ, nullable=False),
        sa.Column("finished_at", TIMESTAMPTZ, nullable=False),
        sa.Index("flower_batch_upload_logs_auction_date_idx", "auction_date"),
        sa.Index("flower_batch_upload_logs_run_id_idx", "run_id"),
    )
    sa.Table(
        "flower_batch_process_logs",
        metadata,
        sa.Column("id", BIGINT, sa.Identity(), primary_key=True),
        sa.Column("run_id", TEXT, nullable=False),
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("asset", TEXT, nullable=False),
        sa.Column("new_items", BIGINT, nullable=False),
        sa.Column("new_varieties", BIGINT, nullable=False),
        sa.Column("auction_rows_affected", BIGINT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("error_text", TEXT, nullable=True),
        sa.Column("raw_content_hash", TEXT, nullable=True),
        sa.Column("started_at", TIMESTAMPTZ, nullable=False),
        sa.Column("finished_at", TIMESTAMPTZ, nullable=False),
        sa.Index("flower_batch_process_logs_run_id_idx", "run_id"),
        sa.Index("flower_batch_process_logs_auction_date_idx", "auction_date"),
    )
    sa.Table(
        "api_responses",
        metadata,
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("page", BIGINT, nullable=False),
        sa.Column("page_size", BIGINT, nullable=False),
        sa.Column("body", TEXT, nullable=False),
        sa.Column("content_hash", TEXT, nullable=False),
        sa.Column("fetched_at", TIMESTAMPTZ, nullable=False),
        sa.UniqueConstraint("auction_date", "flower_gubn", "page"),
    )
    sa.Table(
        "api_call_counts",
        metadata,
        sa.Column("key_fingerprint", TEXT, nullable=False),
        sa.Column("kst_date", DATE, nullable=False),
        sa.Column("calls", BIGINT, nullable=False),
        sa.UniqueConstraint("key_fingerprint", "kst_date"),
    )
    sa.Table(
        "warehouse_source",
        metadata,
        sa.Column("slot", BIGINT, nullable=False),
        sa.Column("source", TEXT, nullable=False),
        sa.Column("claimed_at", TIMESTAMPTZ, nullable=False),
        sa.UniqueConstraint("slot"),
    )
    return metadata


def upgrade() -> None:
    bind = op.get_bind()
    baseline_metadata(bind.dialect.name).create_all(bind, checkfirst=False)


def downgrade() -> None:
    bind = op.get_bind()
    baseline_metadata(bind.dialect.name).drop_all(bind, checkfirst=False)
