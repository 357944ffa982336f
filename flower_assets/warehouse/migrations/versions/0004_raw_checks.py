"""flower_batch_upload_logs.raw_checks: the raw checks' outcomes, judged when a date is fetched.

Rows written before have none: their raw checks are judged from the stored rows.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flower_batch_upload_logs", sa.Column("raw_checks", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flower_batch_upload_logs") as batch:
        batch.drop_column("raw_checks")
