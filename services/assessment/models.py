"""Tables of the assessment service (四必评)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel


class ProjectRecord(SQLModel, table=True):
    """A major project or decision under stability risk assessment."""

    __tablename__ = "assessment_project"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    node_code: str = Field(max_length=12, index=True)
    stage: str = Field(max_length=8)  # 立项, 决策, 实施, 验收
    created_at: dt.datetime
