"""audit rows chain content hashes; the children's signed checkpoints (audit_checkpoint)

Rows already in ``audit_log`` are of format 1 and keep their formula; new rows are of format 2.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("format", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("event_sha256", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("state_sha256", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "audit_checkpoint",
        sa.Column("node", sa.String(12), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node", "row_id"),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoint")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("state_sha256")
        batch.drop_column("event_sha256")
        batch.drop_column("format")
