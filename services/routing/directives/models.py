"""The directives table: each directive as its sender and its receiver know it."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel


class DirectiveRecord(SQLModel, table=True):
    """A directive, as its sender and its receiver each keep it; ``data`` is the Directive proto."""

    __tablename__ = "directive"

    id: str = Field(primary_key=True, max_length=36)
    from_node: str = Field(max_length=12, index=True)
    to_node: str = Field(max_length=12, index=True)
    status: int
    issued_at: dt.datetime
    updated_at: dt.datetime
    data: bytes
