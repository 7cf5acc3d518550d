"""Directives' storage (keyword-only): the directives a center sent or received, and how a
directive event of this center is recorded (``DIRECTIVES``, through ``eventlog.record``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import or_
from sqlmodel import Session, col, select

from fengqiao import eventlog, outbox
from fengqiao.divisions import down_subject
from fengqiao.telemetry import current_headers
from fengqiao.v1 import routing_pb2
from services.routing.directives import rules
from services.routing.directives.models import DirectiveRecord


def get_directive(session: Session, *, directive_id: str) -> routing_pb2.Directive | None:
    record = session.get(DirectiveRecord, directive_id)
    return None if record is None else routing_pb2.Directive.FromString(record.data)


def put_directive(session: Session, *, directive: routing_pb2.Directive, now: dt.datetime) -> None:
    """Insert or update this node's copy of a directive."""
    record = session.get(DirectiveRecord, directive.id)
    if record is None:
        record = DirectiveRecord(
            id=directive.id,
            from_node=directive.from_node,
            to_node=directive.to_node,
            status=int(directive.status),
            issued_at=directive.issued_at.ToDatetime(tzinfo=dt.UTC),
            updated_at=now,
            data=directive.SerializeToString(),
        )
    else:
        record.status = int(directive.status)
        record.updated_at = now
        record.data = directive.SerializeToString()
    session.add(record)


def list_directives(
    session: Session, *, node: str, direction: str, offset: int, limit: int
) -> list[routing_pb2.Directive]:
    """Directives received (``in``), sent (``out``) or both by ``node``, newest first."""
    query = select(DirectiveRecord)
    if direction == "in":
        query = query.where(DirectiveRecord.to_node == node)
    elif direction == "out":
        query = query.where(DirectiveRecord.from_node == node)
    else:
        query = query.where(or_(col(DirectiveRecord.to_node) == node, col(DirectiveRecord.from_node) == node))
    query = query.order_by(col(DirectiveRecord.issued_at).desc(), col(DirectiveRecord.id)).offset(offset).limit(limit)
    return [routing_pb2.Directive.FromString(r.data) for r in session.exec(query).all()]


def _keep(
    session: Session, directive: routing_pb2.Directive, event: routing_pb2.DirectiveEvent, now: dt.datetime
) -> None:
    put_directive(session, directive=directive, now=now)


class DirectiveLog(eventlog.Kind[routing_pb2.Directive, routing_pb2.DirectiveEvent]):
    """Directives of this node: each kept as its copy here, folded as the other side folds it,
    and published — down to the receiver when issued, up from here when answered."""

    def messages(
        self, state: routing_pb2.Directive, event: routing_pb2.DirectiveEvent, headers: Mapping[str, str]
    ) -> list[outbox.Message]:
        """An issued directive goes down to its receiver; an answer up from the answering node."""
        if event.WhichOneof("payload") != "issued":
            return super().messages(state, event, headers)
        subject = down_subject(event.node, event.issued.to_node, "directive", "issued")
        return [outbox.Message(subject, event.id, event.SerializeToString(), headers)]


DIRECTIVES = DirectiveLog("directive", rules.apply_directive, _keep, about=lambda event: event.directive_id)


def record_event(session: Session, *, event: routing_pb2.DirectiveEvent, now: dt.datetime) -> routing_pb2.Directive:
    """Record a directive event of this node: ``eventlog.record`` with ``DIRECTIVES``."""
    current = get_directive(session, directive_id=event.directive_id)
    return eventlog.record_one(session, DIRECTIVES, current, event, headers=current_headers(), now=now)
