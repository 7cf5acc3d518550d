"""Intake's own table: attachments stored at this node."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel


class AttachmentRecord(SQLModel, table=True):
    """An attachment stored at this node under its sha256 (the bytes live on disk)."""

    __tablename__ = "attachment"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content_type: str = Field(max_length=64)
    filename: str = Field(default="", max_length=200)
    stored_at: dt.datetime
