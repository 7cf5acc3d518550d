"""What a node's database says at scrape time: the outbox backlog and quarantine, dead letters (and
the forged ones among them), cases by status, overdue cases, escalations waiting for this center,
and the database's size.

Cases count as lists and figures do: those taken in at or below the node (docs/ARCHITECTURE.md,
*Cases*). Read in one transaction on a reader thread, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy
from sqlalchemy import func
from sqlmodel import Session, col, select

from fengqiao import inbox
from fengqiao.cases.records import CaseRecord
from fengqiao.cases.steps import CLOSED_STATUSES
from fengqiao.db import Database
from fengqiao.metrics import Gauges, Reading
from fengqiao.models import OutboxQuarantine, OutboxRecord
from fengqiao.v1 import case_pb2 as pb

STATUSES = {
    value: name.removeprefix("CASE_STATUS_").lower()
    for name, value in pb.CaseStatus.items()
    if value != pb.CASE_STATUS_UNSPECIFIED
}


def node_gauges(db: Database, *, node_code: str, now: Callable[[], dt.datetime]) -> Gauges:
    """The database gauges of ``node_code``, read with the node's clock."""

    async def read() -> list[Reading]:
        moment = now()
        return await db.read(lambda s: readings(s, node_code=node_code, now=moment))

    return read


def readings(session: Session, *, node_code: str, now: dt.datetime) -> list[Reading]:
    """Every database gauge of the node, from one snapshot."""
    pending = int(session.exec(select(func.count()).select_from(OutboxRecord)).one())
    oldest = _oldest_pending(session)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    refused = inbox.rejected(session)
    quarantined = int(session.exec(select(func.count()).select_from(OutboxQuarantine)).one())
    within = col(CaseRecord.origin_node).startswith(node_code)
    by_status = dict(
        session.exec(select(CaseRecord.status, func.count()).where(within).group_by(col(CaseRecord.status))).all()
    )
    overdue = session.exec(
        select(func.count())
        .select_from(CaseRecord)
        .where(
            within,
            col(CaseRecord.deadline) < now,
            col(CaseRecord.status).not_in([int(s) for s in CLOSED_STATUSES]),
        )
    ).one()
    escalating = session.exec(
        select(CaseRecord.data).where(within, CaseRecord.status == pb.CASE_STATUS_ESCALATING)
    ).all()
    waiting = sum(1 for data in escalating if pb.Case.FromString(data).escalation_to == node_code)
    return [
        Reading("fengqiao_outbox_pending", "Outbox messages not yet acknowledged by JetStream", [({}, pending)]),
        Reading(
            "fengqiao_outbox_oldest_pending_seconds",
            "Age of the oldest outbox message not yet published, quarantined ones aside (0 when none waits)",
            [({}, age)],
        ),
        Reading(
            "fengqiao_outbox_quarantined",
            "Outbox messages the relay gave up on after repeated failures (kept, not published)",
            [({}, quarantined)],
        ),
        Reading(
            "fengqiao_dead_letters",
            "Messages kept as dead letters (never applied), all time",
            [({}, refused.dead_letters)],
        ),
        Reading(
            "fengqiao_forged_messages",
            "Dead letters refused as forged or beyond their sender's authority (伪造或越权), all time, by event type",
            [({"type": kind}, float(count)) for kind, count in sorted(refused.forged.items())],
        ),
        Reading(
            "fengqiao_cases",
            "Cases taken in at or below this node, by status",
            [({"status": name}, float(by_status.get(value, 0))) for value, name in STATUSES.items()],
        ),
        Reading(
            "fengqiao_cases_overdue",
            "Open cases taken in at or below this node whose deadline has passed",
            [({}, float(overdue))],
        ),
        Reading(
            "fengqiao_escalations_pending",
            "Escalations addressed to this center still waiting for its decision",
            [({}, float(waiting))],
        ),
        Reading("fengqiao_database_size_bytes", "Size of the node's database", [({}, float(_size(session)))]),
    ]


def _oldest_pending(session: Session) -> dt.datetime | None:
    oldest: Any = func.min(OutboxRecord.created_at)
    if session.get_bind().dialect.name == "postgresql":
        # stored without a zone, in the session's: read it back as an instant
        oldest = oldest.op("AT TIME ZONE")(func.current_setting("TimeZone"))
    quarantined = select(OutboxQuarantine.outbox_id)  # they have a gauge (and an alert) of their own
    value = session.exec(select(oldest).where(col(OutboxRecord.id).not_in(quarantined))).one()
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _size(session: Session) -> int:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return int(connection.execute(sqlalchemy.text("SELECT pg_database_size(current_database())")).scalar_one())
    pages = connection.execute(sqlalchemy.text("PRAGMA page_count")).scalar_one()
    page_size = connection.execute(sqlalchemy.text("PRAGMA page_size")).scalar_one()
    return int(pages) * int(page_size)
