"""Joint cases, their shared timeline, and risk alerts."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel


class JointCaseRecord(SQLModel, table=True):
    """A 三联 joint case as this center folds it; ``data`` is the JointCase proto.

    ``members`` lists, between commas, the lead and the towns that accepted (",a,b,"), so
    ``LIKE '%,<code>%'`` finds the joint cases a center or its subtree takes part in.
    """

    __tablename__ = "joint_case"

    id: str = Field(primary_key=True, max_length=36)
    lead_node: str = Field(max_length=12, index=True)
    members: str = Field(max_length=512)
    status: int
    opened_at: dt.datetime = Field(index=True)
    closed_at: dt.datetime | None = Field(default=None, index=True)
    updated_at: dt.datetime
    data: bytes


class JointEventRecord(SQLModel, table=True):
    """One event of a joint case's shared timeline, kept as the bytes its author serialized."""

    __tablename__ = "joint_event"

    id: str = Field(primary_key=True, max_length=36)
    joint_case_id: str = Field(max_length=36, index=True)
    lamport: int
    node: str = Field(max_length=12)
    data: bytes


class RiskAlertRecord(SQLModel, table=True):
    """A 联防 risk alert as its raiser, each addressee and the county keep it (RiskAlert proto)."""

    __tablename__ = "risk_alert"

    id: str = Field(primary_key=True, max_length=36)
    from_node: str = Field(max_length=12, index=True)
    to_nodes: str = Field(max_length=512)  # ",a,b,"
    raised_at: dt.datetime = Field(index=True)
    data: bytes
