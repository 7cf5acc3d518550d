"""Storage of 三联 joint cases and 联防 risk alerts (keyword-only): a joint case's timeline is kept
event by event, as serialized by its author, and the case row is refolded from it on every change."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from fengqiao.v1 import routing_pb2 as pb
from services.routing.joint import rules
from services.routing.joint.models import JointCaseRecord, JointEventRecord, RiskAlertRecord


class JointCounts(NamedTuple):
    """Joint cases opened and closed in a period, each counted once."""

    opened: int
    closed: int


def get_joint(session: Session, *, joint_id: str, for_update: bool = False) -> pb.JointCase | None:
    """This center's copy of a joint case; ``for_update`` locks its row (PostgreSQL) so that
    concurrent writers of one timeline refold it one after the other."""
    query = select(JointCaseRecord.data).where(JointCaseRecord.id == joint_id)
    data = session.exec(query.with_for_update() if for_update else query).first()
    return None if data is None else pb.JointCase.FromString(data)


def timeline(session: Session, *, joint_id: str) -> list[bytes]:
    """The serialized events of a joint case in the timeline's one order."""
    query = (
        select(JointEventRecord.data)
        .where(JointEventRecord.joint_case_id == joint_id)
        .order_by(col(JointEventRecord.lamport), col(JointEventRecord.node), col(JointEventRecord.id))
    )
    return list(session.exec(query).all())


def next_lamport(session: Session, *, joint_id: str) -> int:
    """One above the highest Lamport counter of the case's events seen here."""
    query = select(func.max(JointEventRecord.lamport)).where(JointEventRecord.joint_case_id == joint_id)
    return int(session.exec(query).one() or 0) + 1


def has_event(session: Session, *, event_id: str) -> bool:
    return session.get(JointEventRecord, event_id) is not None


def add_event(session: Session, *, event: pb.JointEvent, data: bytes, county: str, now: dt.datetime) -> pb.JointCase:
    """Keep one more event of a timeline (once) and refold the case from the whole timeline."""
    get_joint(session, joint_id=event.joint_case_id, for_update=True)
    if not has_event(session, event_id=event.id):
        session.add(
            JointEventRecord(
                id=event.id, joint_case_id=event.joint_case_id, lamport=event.lamport, node=event.node, data=data
            )
        )
        session.flush()
    serialized = timeline(session, joint_id=event.joint_case_id)
    case, _entries = rules.fold_timeline((pb.JointEvent.FromString(d) for d in serialized), county=county)
    if case is None:  # only an opening makes a case; callers check there is one
        raise ValueError(f"timeline of {event.joint_case_id} has no opening")
    case.event_count = len(serialized)
    case.timeline_hash = rules.timeline_hash(serialized)
    _put_joint(session, case=case, now=now)
    return case


def _put_joint(session: Session, *, case: pb.JointCase, now: dt.datetime) -> None:
    members = [p.node for p in case.participants if p.status == rules.ACCEPTED]
    record = session.get(JointCaseRecord, case.id) or JointCaseRecord(
        id=case.id,
        lead_node=case.lead_node,
        members="",
        status=0,
        opened_at=case.opened_at.ToDatetime(tzinfo=dt.UTC),
        updated_at=now,
        data=b"",
    )
    record.members = "," + ",".join(members) + ","
    record.status = int(case.status)
    record.closed_at = case.closed_at.ToDatetime(tzinfo=dt.UTC) if case.HasField("closed_at") else None
    record.updated_at = now
    record.data = case.SerializeToString()
    session.add(record)


def list_joint(session: Session, *, status: int, offset: int, limit: int) -> list[pb.JointCase]:
    """The joint cases this center holds a copy of, newest first (the caller filters by access)."""
    query = select(JointCaseRecord)
    if status:
        query = query.where(JointCaseRecord.status == status)
    query = query.order_by(col(JointCaseRecord.opened_at).desc(), col(JointCaseRecord.id)).offset(offset).limit(limit)
    return [pb.JointCase.FromString(r.data) for r in session.exec(query).all()]


def joint_counts(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> JointCounts:
    """Joint cases opened, and closed, in [start, end) that a center within ``within`` leads or
    accepted — each case once, however many of its participants lie within."""
    taking_part = col(JointCaseRecord.members).like(f"%,{within}%")
    opened = select(func.count()).where(
        taking_part, col(JointCaseRecord.opened_at) >= start, col(JointCaseRecord.opened_at) < end
    )
    closed = select(func.count()).where(
        taking_part,
        JointCaseRecord.status == pb.JOINT_CASE_STATUS_CLOSED,
        col(JointCaseRecord.closed_at) >= start,
        col(JointCaseRecord.closed_at) < end,
    )
    return JointCounts(int(session.exec(opened).one()), int(session.exec(closed).one()))


def joint_figures(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """``joint_counts`` under their ``NodeStats`` names: this service's part of the federation's
    figures (a ``fengqiao.service.FigureSource``)."""
    counts = joint_counts(session, within=within, start=start, end=end)
    return {"joint_cases_opened": counts.opened, "joint_cases_closed": counts.closed}


def get_alert(session: Session, *, alert_id: str) -> pb.RiskAlert | None:
    record = session.get(RiskAlertRecord, alert_id)
    return None if record is None else pb.RiskAlert.FromString(record.data)


def put_alert(session: Session, *, alert: pb.RiskAlert) -> None:
    """Insert or update this center's copy of a risk alert."""
    record = session.get(RiskAlertRecord, alert.id) or RiskAlertRecord(
        id=alert.id,
        from_node=alert.from_node,
        to_nodes="," + ",".join(alert.to_nodes) + ",",
        raised_at=alert.raised_at.ToDatetime(tzinfo=dt.UTC),
        data=b"",
    )
    record.data = alert.SerializeToString()
    session.add(record)


def list_alerts(session: Session, *, node: str, direction: str, offset: int, limit: int) -> list[pb.RiskAlert]:
    """Alerts raised here (``out``), addressed here (``in``), or either — every one held when
    ``node`` is empty (the county) — newest first."""
    query = select(RiskAlertRecord)
    raised_here = col(RiskAlertRecord.from_node) == node
    addressed_here = col(RiskAlertRecord.to_nodes).like(f"%,{node},%")
    if node and direction == "out":
        query = query.where(raised_here)
    elif node and direction == "in":
        query = query.where(addressed_here)
    elif node:
        query = query.where(or_(raised_here, addressed_here))
    query = query.order_by(col(RiskAlertRecord.raised_at).desc(), col(RiskAlertRecord.id)).offset(offset).limit(limit)
    return [pb.RiskAlert.FromString(r.data) for r in session.exec(query).all()]
