"""Federation's tables: the signed audit checkpoints of the nodes below (``checkpoints``)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel


class AuditCheckpointRecord(SQLModel, table=True):
    """A child's signed statement that its audit chain's row ``row_id`` had hash ``hash`` at
    ``at``; kept as received, never updated (``fengqiao audit verify`` reads them back)."""

    __tablename__ = "audit_checkpoint"

    node: str = Field(primary_key=True, max_length=12)
    row_id: int = Field(primary_key=True)
    hash: str = Field(max_length=64)
    at: str = Field(max_length=40)  # as the node signed it
    public_key: str = Field(max_length=64)  # hex of the raw Ed25519 key
    signature: str = Field(max_length=128)  # hex
    received_at: dt.datetime
