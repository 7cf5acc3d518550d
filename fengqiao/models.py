"""The delivery tables every node has: outbox (and its quarantine), inbox and dead letters.

Datetimes are aware (UTC); SQLModel stores them as UTC on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel


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


class OutboxQuarantine(SQLModel, table=True):
    """An outbox row the relay gave up on after its bounded attempts, with the reason.

    The row itself stays in ``outbox`` (never deleted, never published); the later rows of the
    same aggregate (``aggregate``: a case, a directive, a joint case) wait behind it. A table of
    its own (migration 0003), so the outbox's hot rows stay as they were.
    """

    __tablename__ = "outbox_quarantine"

    outbox_id: int = Field(primary_key=True)
    message_id: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    aggregate: str = Field(default="", max_length=200)  # "" when the row names none
    attempts: int
    reason: str
    quarantined_at: dt.datetime
