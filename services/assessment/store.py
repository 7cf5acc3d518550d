"""Assessment's storage (keyword-only): project event logs, their projections, and the figures.

The registering center records events with ``append`` (the ``ProjectLog`` of
``fengqiao.eventlog``: event, projection, outbox row and audit entry in one transaction); the
tiers above store the replicated copies with ``store_replicated``, in order and once each. Both
fold with ``rules.fold``, so every copy of a project is the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import NamedTuple

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func
from sqlmodel import Session, col, select

from fengqiao import eventlog
from fengqiao.cases.records import CaseRecord
from fengqiao.errors import NotFound
from fengqiao.inbox import NotYet
from fengqiao.v1 import assessment_pb2 as pb
from services.assessment import rules
from services.assessment.models import AssessmentRecord, HazardRecord, ProjectEventRecord, ProjectRecord


class AssessmentCounts(NamedTuple):
    """四必评 figures of a subtree and period, for the federation figures."""

    assessments_done: int
    hazards_found: int
    hazards_resolved: int
    projects_blocked: int


def _when(ts: Timestamp) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)


def load_project(session: Session, *, project_id: str, for_update: bool = False) -> pb.Project | None:
    """The current state of a project, ``None`` if this node has not heard of it."""
    query = select(ProjectRecord.data).where(ProjectRecord.id == project_id)
    if for_update:
        query = query.with_for_update()
    data = session.exec(query).first()
    return None if data is None else pb.Project.FromString(data)


def get_project(session: Session, *, project_id: str, for_update: bool = False) -> pb.Project:
    """The current state of a project, or ``NotFound``."""
    project = load_project(session, project_id=project_id, for_update=for_update)
    if project is None:
        raise NotFound(f"项目 {project_id} 不存在")
    return project


def find_case(session: Session, *, case_id: str) -> CaseRecord | None:
    """A case this node knows (its own or replicated), for linking it to a project."""
    return session.get(CaseRecord, case_id)


def _store(session: Session, *, event: pb.ProjectEvent, project: pb.Project) -> None:
    kind = event.WhichOneof("payload") or ""
    at = _when(event.at)
    session.add(
        ProjectEventRecord(
            id=event.id, project_id=event.project_id, seq=event.seq, node=event.node, type=kind, at=at,
            data=event.SerializeToString(),
        )
    )  # fmt: skip
    record = session.get(ProjectRecord, project.id) or ProjectRecord(
        id=project.id, name=project.name, node_code=project.node, stage=project.stage, status=project.status,
        kind=project.kind, registered_at=_when(project.registered_at), updated_at=at, version=0, data=b"",
    )  # fmt: skip
    record.stage, record.status, record.version, record.updated_at = project.stage, project.status, project.version, at
    record.level = next((g.level for g in reversed(project.gates) if g.assessments), "")  # latest assessment's
    record.case_count = len(project.cases)
    record.data = project.SerializeToString()
    session.add(record)
    if kind == "assessed":
        session.add(
            AssessmentRecord(
                id=event.id, project_id=project.id, node_code=project.node, stage=event.assessed.stage,
                level=event.assessed.assessment.level, assessed_at=at,
            )
        )  # fmt: skip
        for point in event.assessed.assessment.risk_points:
            if session.get(HazardRecord, point.hazard_id) is None:
                session.add(
                    HazardRecord(
                        id=point.hazard_id, project_id=project.id, node_code=project.node,
                        stage=event.assessed.stage, found_at=at,
                    )
                )  # fmt: skip
    elif kind == "hazard_resolved":
        hazard = session.get(HazardRecord, event.hazard_resolved.hazard_id)
        if hazard is not None:
            hazard.resolved_at = at
            session.add(hazard)
    session.flush()


def _keep(session: Session, project: pb.Project, event: pb.ProjectEvent, now: dt.datetime) -> None:
    _store(session, event=event, project=project)


PROJECTS = eventlog.Kind("project", rules.fold, _keep, about=lambda event: event.project_id)
"""The project logs of the registering center: folded as every copy folds them, kept in the
project tables, published on its project subjects."""


def append(session: Session, *, event: pb.ProjectEvent, headers: Mapping[str, str], now: dt.datetime) -> pb.Project:
    """Record a new event of its project (registering node): ``eventlog.record`` with ``PROJECTS``."""
    current = load_project(session, project_id=event.project_id, for_update=True)
    return eventlog.record_one(session, PROJECTS, current, event, headers=headers, now=now)


def has_event(session: Session, *, event_id: str) -> bool:
    """Whether this node keeps the project event ``event_id`` already."""
    return session.get(ProjectEventRecord, event_id) is not None


def store_replicated(session: Session, *, event: pb.ProjectEvent) -> bool:
    """Store an event replicated from below; ``False`` if it was here already.

    Events apply in order: one that arrives ahead of its predecessor waits (``NotYet``).
    """
    current = load_project(session, project_id=event.project_id, for_update=True)
    version = current.version if current is not None else 0
    if event.seq <= version:
        return False
    if event.seq > version + 1:
        raise NotYet(f"项目 {event.project_id} 的事件 {event.seq} 早于 {version + 1} 到达")
    _store(session, event=event, project=rules.fold(current, event))
    return True


def list_projects(
    session: Session,
    *,
    within: str,
    limit: int,
    after: str = "",
    status: str = "",
    stage: str = "",
    kind: str = "",
    level: str = "",
    with_cases: bool = False,
) -> list[pb.Project]:
    """Projects registered at or below ``within``, by id, after the cursor ``after``, filtered."""
    query = select(ProjectRecord.data).where(col(ProjectRecord.node_code).startswith(within))
    for column, value in (
        (ProjectRecord.status, status), (ProjectRecord.stage, stage),
        (ProjectRecord.kind, kind), (ProjectRecord.level, level),
    ):  # fmt: skip
        if value:
            query = query.where(column == value)
    if with_cases:
        query = query.where(col(ProjectRecord.case_count) > 0)
    if after:
        query = query.where(col(ProjectRecord.id) > after)
    rows = session.exec(query.order_by(col(ProjectRecord.id)).limit(limit)).all()
    return [pb.Project.FromString(data) for data in rows]


def list_events(session: Session, *, project_id: str) -> list[pb.ProjectEvent]:
    """A project's log, in order."""
    query = select(ProjectEventRecord.data).where(ProjectEventRecord.project_id == project_id)
    rows = session.exec(query.order_by(col(ProjectEventRecord.seq))).all()
    return [pb.ProjectEvent.FromString(data) for data in rows]


def assessment_counts(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> AssessmentCounts:
    """Assessments filed, hazards found and resolved, projects blocked at high risk, in [start, end)."""

    def count(query: object) -> int:
        return int(session.exec(query).one())  # type: ignore[call-overload]

    filed = col(AssessmentRecord.assessed_at)
    in_area = col(AssessmentRecord.node_code).startswith(within)
    hazards = col(HazardRecord.node_code).startswith(within)
    return AssessmentCounts(
        assessments_done=count(select(func.count()).where(in_area, filed >= start, filed < end)),
        hazards_found=count(
            select(func.count()).where(hazards, col(HazardRecord.found_at) >= start, col(HazardRecord.found_at) < end)
        ),
        hazards_resolved=count(
            select(func.count()).where(
                hazards, col(HazardRecord.resolved_at) >= start, col(HazardRecord.resolved_at) < end
            )
        ),
        projects_blocked=count(
            select(func.count(func.distinct(AssessmentRecord.project_id))).where(
                in_area, filed >= start, filed < end, AssessmentRecord.level == "high"
            )
        ),
    )


def assessment_figures(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """``assessment_counts`` under their ``NodeStats`` names: this service's part of the
    federation's figures (a ``fengqiao.service.FigureSource``)."""
    return assessment_counts(session, within=within, start=start, end=end)._asdict()
