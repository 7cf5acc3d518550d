"""The case tables: the case log, its projection and named counters (受理编号).

Datetimes are aware (UTC); SQLModel stores them as UTC on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
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
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_event_case_seq"),)

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
