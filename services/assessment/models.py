"""Tables of the assessment service (四必评): each project's event log, its projection, and the
rows the figures count (assessments filed, hazards found and resolved).

Every node stores what it registered and what its subtree replicated to it, alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class ProjectRecord(SQLModel, table=True):
    """A major project or decision under stability risk assessment (the fold of its events)."""

    __tablename__ = "assessment_project"
    __table_args__ = (Index("ix_assessment_project_node", "node_code", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    node_code: str = Field(max_length=12)
    stage: str = Field(max_length=8)  # the current gate: 立项, 决策, 实施, 验收
    status: str = Field(max_length=16)  # active, suspended, completed
    kind: str = Field(max_length=20)
    level: str = Field(default="", max_length=8)  # of the latest assessment
    case_count: int = 0
    registered_at: dt.datetime
    updated_at: dt.datetime
    version: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # fengqiao.v1.Project


class ProjectEventRecord(SQLModel, table=True):
    """One event of a project's log, as the registering center wrote it."""

    __tablename__ = "assessment_project_event"
    __table_args__ = (UniqueConstraint("project_id", "seq", name="uq_project_event_seq"),)

    id: str = Field(primary_key=True, max_length=36)
    project_id: str = Field(max_length=36)
    seq: int
    node: str = Field(max_length=12)
    type: str = Field(max_length=40)
    at: dt.datetime
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # fengqiao.v1.ProjectEvent


class AssessmentRecord(SQLModel, table=True):
    """A gate assessment filed (reassessments included), for the figures."""

    __tablename__ = "assessment_filed"
    __table_args__ = (Index("ix_assessment_filed_node_at", "node_code", "assessed_at"),)

    id: str = Field(primary_key=True, max_length=36)  # the event's id
    project_id: str = Field(max_length=36)
    node_code: str = Field(max_length=12)
    stage: str = Field(max_length=8)
    level: str = Field(max_length=8)
    assessed_at: dt.datetime


class HazardRecord(SQLModel, table=True):
    """A hazard (隐患) a risk point became, for the figures; resolved when ``resolved_at`` is set."""

    __tablename__ = "assessment_hazard"
    __table_args__ = (Index("ix_assessment_hazard_node_found", "node_code", "found_at"),)

    id: str = Field(primary_key=True, max_length=36)
    project_id: str = Field(max_length=36)
    node_code: str = Field(max_length=12)
    stage: str = Field(max_length=8)
    found_at: dt.datetime
    resolved_at: dt.datetime | None = None
