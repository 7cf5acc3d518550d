"""Routing's storage (keyword-only): the directives a center sent or received."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_
from sqlmodel import Session, col, select

from fengqiao.v1 import routing_pb2
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
