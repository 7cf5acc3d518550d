"""figure facts kept beside the case projection (case_fact, assignment_fact, call_fact)

Creates the fact tables and fills them from the event logs of the cases already stored
(``fengqiao.cases.rebuild.rebuild_batch``, what ``fengqiao figures rebuild`` runs), so the
figures of an upgraded database are those it gave before. Also indexes the case events by
writer and time, for the newest event of each node.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None

_BATCH = 1000
_SUMMED = [
    "closed",
    "on_time",
    "mediated",
    "followed_up",
    "satisfaction",
    "handling_seconds",
    "resolved_tier",
    "at_county",
    "open_deadline_us",
    "supervised",
    "escalated",
]
_ASSIGNMENT_SUMMED = [
    "department",
    "acknowledged",
    "returned",
    "escalated_away",
    "closed",
    "on_time",
    "deadline_us",
    "satisfaction",
]


def upgrade() -> None:
    op.create_table(
        "case_fact",
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("origin_node", sa.String(12), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("mediated", sa.Integer(), nullable=False),
        sa.Column("followed_up", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=False),
        sa.Column("handling_seconds", sa.BigInteger(), nullable=False),
        sa.Column("resolved_tier", sa.Integer(), nullable=False),
        sa.Column("at_county", sa.Integer(), nullable=False),
        sa.Column("open_deadline_us", sa.BigInteger(), nullable=True),
        sa.Column("supervised", sa.Integer(), nullable=False),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("grid_worker", sa.String(), nullable=False),
        sa.Column("grid", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_index("ix_case_fact_cohort", "case_fact", ["origin_node", "received_us", *_SUMMED])
    op.create_index("ix_case_fact_period", "case_fact", ["received_us", "origin_node", *_SUMMED])
    op.create_index("ix_case_fact_grid_worker", "case_fact", ["grid_worker", "received_us"])
    op.create_index("ix_case_fact_category", "case_fact", ["category", "received_us"])
    op.create_table(
        "assignment_fact",
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("origin_node", sa.String(12), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("department", sa.String(), nullable=False),
        sa.Column("acknowledged", sa.Integer(), nullable=False),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.Column("escalated_away", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("deadline_us", sa.BigInteger(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=False),
        sa.Column("current", sa.Integer(), nullable=False),
        sa.Column("closer", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "ordinal"),
    )
    op.create_index("ix_assignment_fact_cohort", "assignment_fact", ["origin_node", "received_us", *_ASSIGNMENT_SUMMED])
    op.create_index("ix_assignment_fact_department", "assignment_fact", ["department", "received_us"])
    op.create_table(
        "call_fact",
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("department", sa.String(), nullable=False),
        sa.Column("origin_node", sa.String(12), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("report_by_us", sa.BigInteger(), nullable=True),
        sa.Column("reported_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", "department"),
    )
    op.create_index("ix_call_fact_cohort", "call_fact", ["origin_node", "received_us"])
    op.create_index("ix_case_event_node_at", "case_event", ["node", "at"])
    _fill()


def _fill() -> None:
    """The facts of every case stored, from its event log."""
    from fengqiao.cases import rebuild  # the definition of the facts, as of this code

    connection = op.get_bind()
    ids = list(connection.execute(sa.text("SELECT id FROM case_record ORDER BY id")).scalars())
    for start in range(0, len(ids), _BATCH):
        rebuild.rebuild_batch(connection, ids[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index("ix_case_event_node_at", table_name="case_event")
    op.drop_table("call_fact")
    op.drop_table("assignment_fact")
    op.drop_table("case_fact")
