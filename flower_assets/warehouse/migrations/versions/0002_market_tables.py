"""Market layer: daily_item_prices, variety_price_changes, category_price_index.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TEXT = sa.Text()
DATE = sa.Date().with_variant(sa.Text(), "sqlite")  # SQLite keeps dates as ISO text
DOUBLE = sa.Double()


def upgrade() -> None:
    op.create_table(
        "daily_item_prices",
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_type_id", BIGINT, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("quantity", BIGINT, nullable=False),
        sa.Column("total_price", BIGINT, nullable=False),
        sa.Column("avg_price", BIGINT, nullable=False),
        sa.Column("varieties_traded", BIGINT, nullable=False),
        sa.Column("grades_traded", BIGINT, nullable=False),
        sa.Column("prev_auction_date", DATE, nullable=True),
        sa.Column("prev_avg_price", BIGINT, nullable=True),
        sa.Column("change_vs_prev", BIGINT, nullable=True),
        sa.Column("change_vs_prev_pct", DOUBLE, nullable=True),
        sa.Column("avg_price_28d", BIGINT, nullable=True),
        sa.Column("change_vs_28d", BIGINT, nullable=True),
        sa.Column("change_vs_28d_pct", DOUBLE, nullable=True),
        sa.UniqueConstraint(
            "auction_date",
            "flower_type_id",
            name="daily_item_prices_auction_date_flower_type_id_key",
        ),
        sa.ForeignKeyConstraint(
            ["flower_type_id"], ["flower_types.id"], name="daily_item_prices_flower_type_id_fkey"
        ),
    )
    op.create_table(
        "variety_price_changes",
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("flower_type_id", BIGINT, nullable=False),
        sa.Column("item_name", TEXT, nullable=False),
        sa.Column("flower_id", BIGINT, nullable=False),
        sa.Column("variety_name", TEXT, nullable=False),
        sa.Column("grade", TEXT, nullable=False),
        sa.Column("quantity", BIGINT, nullable=False),
        sa.Column("avg_price", BIGINT, nullable=False),
        sa.Column("prev_auction_date", DATE, nullable=True),
        sa.Column("prev_avg_price", BIGINT, nullable=True),
        sa.Column("change_vs_prev", BIGINT, nullable=True),
        sa.Column("change_vs_prev_pct", DOUBLE, nullable=True),
        sa.Column("median_price_28d", BIGINT, nullable=True),
        sa.UniqueConstraint(
            "auction_date",
            "flower_id",
            "grade",
            name="variety_price_changes_auction_date_flower_id_grade_key",
        ),
        sa.ForeignKeyConstraint(
            ["flower_id"], ["flowers.id"], name="variety_price_changes_flower_id_fkey"
        ),
    )
    op.create_table(
        "category_price_index",
        sa.Column("auction_date", DATE, nullable=False),
        sa.Column("flower_gubn", TEXT, nullable=False),
        sa.Column("index_value", DOUBLE, nullable=False),
        sa.Column("chain_link", DOUBLE, nullable=False),
        sa.Column("matched_pairs", BIGINT, nullable=False),
        sa.Column("quantity_share", DOUBLE, nullable=False),
        sa.Column("base_date", DATE, nullable=False),
        sa.UniqueConstraint(
            "auction_date", "flower_gubn", name="category_price_index_auction_date_flower_gubn_key"
        ),
    )


def downgrade() -> None:
    for table in ("category_price_index", "variety_price_changes", "daily_item_prices"):
        op.drop_table(table)
