"""The baseline: the schema as the release before migrations made it with ``create_all``.

Tables are frozen here (plain SQLAlchemy types, no model imports), so later changes to the models
never change what this migration does. A table that already exists is left as it is: that is how a
database made by ``create_all`` of the previous release is adopted rather than recreated.

Revision ID: 0001
Revises: -
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def tables() -> sa.MetaData:
    """The baseline's tables, on a metadata of their own."""
    metadata = sa.MetaData()
    sa.Table(
        "api_key",
        metadata,
        sa.Column("key_sha256", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("node_code", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "app_user",
        metadata,
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("node_code", sa.String(12), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
    )
    sa.Table(
        "assessment_filed",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("node_code", sa.String(12), nullable=False),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_assessment_filed_node_at", "node_code", "assessed_at"),
    )
    sa.Table(
        "assessment_hazard",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("node_code", sa.String(12), nullable=False),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Index("ix_assessment_hazard_node_found", "node_code", "found_at"),
    )
    sa.Table(
        "assessment_project",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("node_code", sa.String(12), nullable=False),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("case_count", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Index("ix_assessment_project_node", "node_code", "id"),
    )
    sa.Table(
        "assessment_project_event",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(12), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("project_id", "seq", name="uq_project_event_seq"),
    )
    sa.Table(
        "attachment",
        metadata,
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "audit_log",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("node", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    sa.Table(
        "case_event",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(12), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("case_id", "seq", name="uq_event_case_seq"),
        sa.Index("ix_case_event_case_id", "case_id"),
    )
    sa.Table(
        "case_record",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("receipt_no", sa.String(40), nullable=False),
        sa.Column("origin_node", sa.String(12), nullable=False),
        sa.Column("holder_node", sa.String(12), nullable=False),
        sa.Column("division_code", sa.String(12), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("grid", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("response_class", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alarms_pending", sa.Boolean(), nullable=False),
        sa.Column("client_request_id", sa.String(80), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("origin_node", "receipt_no", name="uq_case_receipt"),
        sa.UniqueConstraint("origin_node", "client_request_id", name="uq_case_request"),
        sa.Index("ix_case_alarms", "holder_node", "alarms_pending", "deadline"),
        sa.Index("ix_case_origin_received", "origin_node", "received_at"),
    )
    sa.Table(
        "counter",
        metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    sa.Table(
        "dead_letter",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("stream_seq", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    sa.Table(
        "directive",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("from_node", sa.String(12), nullable=False),
        sa.Column("to_node", sa.String(12), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Index("ix_directive_from_node", "from_node"),
        sa.Index("ix_directive_to_node", "to_node"),
    )
    sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "joint_case",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("lead_node", sa.String(12), nullable=False),
        sa.Column("members", sa.String(512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Index("ix_joint_case_closed_at", "closed_at"),
        sa.Index("ix_joint_case_lead_node", "lead_node"),
        sa.Index("ix_joint_case_opened_at", "opened_at"),
    )
    sa.Table(
        "joint_event",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("joint_case_id", sa.String(36), nullable=False),
        sa.Column("lamport", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(12), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Index("ix_joint_event_joint_case_id", "joint_case_id"),
    )
    sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("headers", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("message_id"),
    )
    sa.Table(
        "risk_alert",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("from_node", sa.String(12), nullable=False),
        sa.Column("to_nodes", sa.String(512), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Index("ix_risk_alert_from_node", "from_node"),
        sa.Index("ix_risk_alert_raised_at", "raised_at"),
    )
    return metadata


def upgrade() -> None:
    tables().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    tables().drop_all(op.get_bind(), checkfirst=True)
