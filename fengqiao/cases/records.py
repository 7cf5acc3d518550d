"""The case tables: the case log, its projection and named counters (受理编号).

Datetimes are aware (UTC); SQLModel stores them as UTC on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class CaseRecord(SQLModel, table=True):
    """The current state of a case (the fold of its events) with columns to filter on."""

    __tablename__ = "case_record"
    __table_args__ = (
        UniqueConstraint("origin_node", "client_request_id", name="uq_case_request"),
        UniqueConstraint("origin_node", "receipt_no", name="uq_case_receipt"),
        # Few indexes on purpose: every one costs each write. Lists and figures scan a subtree
        # by origin and time; the clock watch looks for open cases with alarms still owed.
        Index("ix_case_origin_received", "origin_node", "received_at"),
        Index("ix_case_alarms", "holder_node", "alarms_pending", "deadline"),
    )

    id: str = Field(primary_key=True, max_length=36)
    receipt_no: str = Field(max_length=40)
    origin_node: str = Field(max_length=12)
    holder_node: str = Field(max_length=12)
    division_code: str = Field(max_length=12)
    category: str = Field(max_length=40)
    status: int
    grid: str = Field(default="", max_length=200)
    channel: str = Field(default="", max_length=40)
    response_class: int = 0
    deadline: dt.datetime | None = None
    alarms_pending: bool = False  # open, with a deadline not yet 督办
    client_request_id: str | None = Field(default=None, max_length=80)
    received_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None = None
    version: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # fengqiao.v1.Case


class CaseEventRecord(SQLModel, table=True):
    """One event of a case's log, as it was written by the acting node."""

    __tablename__ = "case_event"
    __table_args__ = (
        UniqueConstraint("case_id", "seq", name="uq_event_case_seq"),
        # the newest event each node wrote (how stale its figures are), one index probe per node
        Index("ix_case_event_node_at", "node", "at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(max_length=36, index=True)
    seq: int
    node: str = Field(max_length=12)
    type: str = Field(max_length=40)
    at: dt.datetime
    stored_at: dt.datetime
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # fengqiao.v1.CaseEvent


class Counter(SQLModel, table=True):
    """Named counters, e.g. the daily sequence of 受理编号."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=64)
    value: int = 0


class ResealProgress(SQLModel, table=True):
    """How far ``fengqiao keys rotate`` has re-sealed one table under one key (migration 0005):
    committed with each batch, so an interrupted run goes on from there."""

    __tablename__ = "reseal_progress"

    key_id: str = Field(primary_key=True, max_length=8)  # the key the rows are re-sealed under
    table_name: str = Field(primary_key=True, max_length=40)
    after: str = Field(default="", max_length=64)  # the last row id done
    scanned: int = 0
    resealed: int = 0
    unreadable: int = 0  # under a key the node does not hold
    updated_at: dt.datetime
    finished_at: dt.datetime | None = None


# The figure facts (``fengqiao.cases.facts``), kept beside the projection by every fold
# (``fengqiao.cases.factstore``) and summed by the federation's figure queries. Times are
# microseconds since the epoch (UTC), so period bounds compare exactly on every database;
# flags are 0/1 integers, so they sum. Each table is indexed for its cohort: the cases taken in
# at or below a node (division-code prefix) during a period.


_SUMMED = (
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
)
_ASSIGNMENT_SUMMED = (
    "department",
    "acknowledged",
    "returned",
    "escalated_away",
    "closed",
    "on_time",
    "deadline_us",
    "satisfaction",
)


class CaseFactRecord(SQLModel, table=True):
    """One case's figure facts, as of its projection."""

    __tablename__ = "case_fact"
    __table_args__ = (
        # the figures' sums read only an index (covering): a subtree's rows in origin order (no
        # sort for the GROUP BY origin), or, for a short period of a wide subtree, its rows
        Index("ix_case_fact_cohort", "origin_node", "received_us", *_SUMMED),
        Index("ix_case_fact_period", "received_us", "origin_node", *_SUMMED),
        Index("ix_case_fact_grid_worker", "grid_worker", "received_us"),
        Index("ix_case_fact_category", "category", "received_us"),  # lists by category, newest first
    )

    case_id: str = Field(primary_key=True, max_length=36)
    origin_node: str = Field(max_length=12)
    received_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    category: str = Field(max_length=40)
    status: int
    closed: int = 0
    on_time: int = 0
    mediated: int = 0
    followed_up: int = 0
    satisfaction: int = 0
    handling_seconds: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    resolved_tier: int = 0
    at_county: int = 0
    open_deadline_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    supervised: int = 0
    escalated: int = 0
    grid_worker: str = ""
    grid: str = ""


class AssignmentFactRecord(SQLModel, table=True):
    """One 交办 of a case and what became of it (``facts.Assignment``), in order."""

    __tablename__ = "assignment_fact"
    __table_args__ = (
        Index("ix_assignment_fact_cohort", "origin_node", "received_us", *_ASSIGNMENT_SUMMED),
        Index("ix_assignment_fact_department", "department", "received_us"),
    )

    case_id: str = Field(primary_key=True, max_length=36)
    ordinal: int = Field(primary_key=True)
    origin_node: str = Field(max_length=12)
    received_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    department: str
    acknowledged: int = 0
    returned: int = 0
    escalated_away: int = 0
    closed: int = 0
    on_time: int = 0
    deadline_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    satisfaction: int = 0
    current: int = 0  # the assignment being handled now
    closer: int = 0  # the assignment that closed the case (gets the 回访's satisfaction)


class CallFactRecord(SQLModel, table=True):
    """A department called to a case by 吹哨 or reporting for duty (``facts.Call``)."""

    __tablename__ = "call_fact"
    __table_args__ = (Index("ix_call_fact_cohort", "origin_node", "received_us"),)

    case_id: str = Field(primary_key=True, max_length=36)
    department: str = Field(primary_key=True)
    origin_node: str = Field(max_length=12)
    received_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    report_by_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    reported_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
