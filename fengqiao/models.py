"""Tables every node has: the case log and its projection, outbox, inbox, dead letters, users.

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


class OutboxRecord(SQLModel, table=True):
    """An event waiting to be published; written in the same transaction as the event."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64, unique=True)
    subject: str = Field(max_length=200)
    headers: str = Field(default="{}")  # JSON object, e.g. the trace context
    created_at: dt.datetime
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class InboxRecord(SQLModel, table=True):
    """A message a consumer has applied; written in the same transaction as its effect."""

    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=64)
    message_id: str = Field(primary_key=True, max_length=64)
    processed_at: dt.datetime


class DeadLetter(SQLModel, table=True):
    """A message a consumer could not process, kept with the reason."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    consumer: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    stream_seq: int | None = None
    reason: str
    received_at: dt.datetime
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Counter(SQLModel, table=True):
    """Named counters, e.g. the daily sequence of 受理编号."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=64)
    value: int = 0


class AttachmentRecord(SQLModel, table=True):
    """An attachment stored at this node under its sha256 (the bytes live on disk)."""

    __tablename__ = "attachment"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content_type: str = Field(max_length=64)
    filename: str = Field(default="", max_length=200)
    stored_at: dt.datetime


class User(SQLModel, table=True):
    """An operator account of this node."""

    __tablename__ = "app_user"

    username: str = Field(primary_key=True, max_length=64)
    password_hash: str
    role: str = Field(max_length=32)
    node_code: str = Field(max_length=12)
    display_name: str = ""


class ApiKey(SQLModel, table=True):
    """An Open311 client's API key (``api_key`` of GeoReport v2), stored as its SHA-256 only."""

    __tablename__ = "api_key"

    key_sha256: str = Field(primary_key=True, max_length=64)
    label: str = Field(max_length=100)
    node_code: str = Field(max_length=12)  # requests may be made at this node and below
    created_at: dt.datetime
