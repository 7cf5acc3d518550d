"""Downward commands (指令/交办): sent down the down streams, which buffer through link outages,
and answered (签收, 办结) up the events streams. Sender and receiver each keep a copy, changed
only through ``rules.apply_directive``, in the same transaction as the outbox row (here, through
``DIRECTIVES``) or the inbox row (``consumers``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

import grpc
from sqlmodel import Session

from fengqiao import eventlog, outbox
from fengqiao.divisions import down_subject
from fengqiao.errors import InvalidArgument, NotFound
from fengqiao.grpcutil import grpc_method, page_bounds
from fengqiao.telemetry import current_headers
from fengqiao.v1 import common_pb2, routing_pb2
from services.routing.base import RoutingBase
from services.routing.directives import rules, store


def _overdue(directive: routing_pb2.Directive, now: dt.datetime) -> routing_pb2.Directive:
    directive.overdue = (
        directive.status != routing_pb2.DIRECTIVE_STATUS_COMPLETED
        and directive.HasField("deadline")
        and directive.deadline.ToDatetime(tzinfo=dt.UTC) < now
    )
    return directive


def _keep(
    session: Session, directive: routing_pb2.Directive, event: routing_pb2.DirectiveEvent, now: dt.datetime
) -> None:
    store.put_directive(session, directive=directive, now=now)


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
    current = store.get_directive(session, directive_id=event.directive_id)
    return eventlog.record_one(session, DIRECTIVES, current, event, headers=current_headers(), now=now)


class DirectiveMethods(RoutingBase):
    """Sending directives down, and answering the ones received."""

    def _event(self, directive_id: str, actor: str) -> routing_pb2.DirectiveEvent:
        if not actor.strip():
            raise InvalidArgument("actor", "操作人不能为空")
        event = routing_pb2.DirectiveEvent(
            id=str(uuid.uuid4()), directive_id=directive_id, node=self._node, actor=actor
        )
        event.at.FromDatetime(self._clock.now())
        return event

    async def _record(self, event: routing_pb2.DirectiveEvent) -> routing_pb2.Directive:
        now = self._clock.now()
        directive = await self._db.write(lambda s: record_event(s, event=event, now=now))
        self._on_commit()
        return _overdue(directive, now)

    @grpc_method
    async def SendDirective(
        self, request: routing_pb2.SendDirectiveRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.Directive:
        if request.to_node == self._node or request.to_node not in {n.code for n in self._topology.subtree(self._node)}:
            raise InvalidArgument("to_node", f"{request.to_node} 不是本中心的下级中心")
        event = self._event(str(uuid.uuid4()), request.actor)
        event.issued.CopyFrom(
            routing_pb2.Directive(
                from_node=self._node,
                to_node=request.to_node,
                kind=request.kind or "directive",
                title=request.title,
                body=request.body,
                case_id=request.case_id,
                deadline=request.deadline if request.HasField("deadline") else None,
            )
        )
        return await self._record(event)

    async def _answer(self, request: routing_pb2.DirectiveActionRequest, kind: str) -> routing_pb2.Directive:
        current = await self._db.read(lambda s: store.get_directive(s, directive_id=request.id))
        if current is None or current.to_node != self._node:
            raise NotFound(f"本中心没有收到编号为 {request.id} 的指令")
        event = self._event(request.id, request.actor)
        setattr(event, kind, request.text)
        return await self._record(event)

    @grpc_method
    async def AcknowledgeDirective(
        self, request: routing_pb2.DirectiveActionRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.Directive:
        return await self._answer(request, "acknowledged")

    @grpc_method
    async def CompleteDirective(
        self, request: routing_pb2.DirectiveActionRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.Directive:
        return await self._answer(request, "completed")

    @grpc_method
    async def ListDirectives(
        self, request: routing_pb2.ListDirectivesRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.ListDirectivesResponse:
        if request.direction not in ("", "in", "out"):
            raise InvalidArgument("direction", "direction 须为 in（收到的）、out（下达的）或留空")
        offset, size = page_bounds(request.page)
        rows = await self._db.read(
            lambda s: store.list_directives(
                s, node=self._node, direction=request.direction, offset=offset, limit=size + 1
            )
        )
        now = self._clock.now()
        token = str(offset + size) if len(rows) > size else ""
        return routing_pb2.ListDirectivesResponse(
            directives=[_overdue(d, now) for d in rows[:size]], page=common_pb2.PageInfo(next_page_token=token)
        )
