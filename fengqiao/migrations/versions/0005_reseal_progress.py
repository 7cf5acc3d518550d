"""how far re-sealing under a rotated personal-data key has got (reseal_progress)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reseal_progress",
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("table_name", sa.String(40), nullable=False),
        sa.Column("after", sa.String(64), nullable=False),
        sa.Column("scanned", sa.Integer(), nullable=False),
        sa.Column("resealed", sa.Integer(), nullable=False),
        sa.Column("unreadable", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", "table_name"),
    )


def downgrade() -> None:
    op.drop_table("reseal_progress")
