"""What each market date is built from: record_digests and market_builds.

record_digests is filled from the auction records already stored. market_builds starts empty:
what the stored market rows were built from is not known, so every market date is stale until
the next market run rebuilds it (`flower-assets materialize`, or the market sensor).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa
from alembic import op

# The code's own digest: a stored digest must equal what the records step writes.
from flower_assets.market.history import record_digests

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TEXT = sa.Text()
DATE = sa.Date().with_variant(sa.Text(), "sqlite")  # SQLite keeps dates as ISO text
TIMESTAMPTZ = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")

RECORDS = """
SELECT b.auction_date, t.flower_gubn, b.flower_id, b.grade, b.quantity, b.avg_price, b.total_price
FROM bidding_flowers b
JOIN flowers f ON f.id = b.flower_id
JOIN flower_types t ON t.id = f.flower_type_id
"""


def upgrade() -> None:
    digests = op.create_table(
        "record_digests",
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("records", BIGINT, nullable=False),
        sa.Column("digest", TEXT, nullable=False),
        sa.UniqueConstraint(
            "auction_date", "flower_gubn", name="record_digests_auction_date_flower_gubn_key"
        ),
    )
    op.create_table(
        "market_builds",
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("history_digest", TEXT, nullable=False),
        sa.Column("run_id", TEXT, nullable=False),
        sa.Column("built_at", TIMESTAMPTZ, nullable=False),
        sa.UniqueConstraint("auction_date", name="market_builds_auction_date_key"),
    )
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    rows = bind.execute(sa.text(RECORDS)).fetchall()
    records = pl.DataFrame(
        [tuple(row) for row in rows],
        schema={
            "auction_date": pl.String if sqlite else pl.Date,
            "flower_gubn": pl.String,
            "flower_id": pl.Int64,
            "grade": pl.String,
            "quantity": pl.Int64,
            "avg_price": pl.Int64,
            "total_price": pl.Int64,
        },
        orient="row",
    )
    if sqlite:
        records = records.with_columns(pl.col("auction_date").str.to_date("%Y-%m-%d"))
    found = record_digests(records)
    if sqlite:
        found = found.with_columns(pl.col("auction_date").dt.to_string("%Y-%m-%d"))
    if found.height:
        op.bulk_insert(digests, found.to_dicts())


def downgrade() -> None:
    op.drop_table("market_builds")
    op.drop_table("record_digests")
