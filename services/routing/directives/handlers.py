"""Downward commands (指令/交办): sent down the down streams, which buffer through link outages,
and answered (签收, 办结) up the events streams. Sender and receiver each keep a copy, changed
only through ``rules.apply_directive``, in the same transaction as the outbox row (recorded with
``store.DIRECTIVES``) or the inbox row (``consumers``)."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc

from fengqiao.errors import InvalidArgument, NotFound
from fengqiao.grpcutil import grpc_method, page_bounds
from fengqiao.v1 import common_pb2, routing_pb2
from services.routing.base import RoutingBase
from services.routing.directives import store
from services.routing.directives.store import record_event


def _overdue(directive: routing_pb2.Directive, now: dt.datetime) -> routing_pb2.Directive:
    directive.overdue = (
        directive.status != routing_pb2.DIRECTIVE_STATUS_COMPLETED
        and directive.HasField("deadline")
        and directive.deadline.ToDatetime(tzinfo=dt.UTC) < now
    )
    return directive


class DirectiveMethods(RoutingBase):
    """Sending directives down, and answering the ones received."""

    def _event(self, directive_id: str, actor: str) -> routing_pb2.DirectiveEvent:
        return self._new_event(routing_pb2.DirectiveEvent, actor, directive_id=directive_id)

    async def _record(self, event: routing_pb2.DirectiveEvent) -> routing_pb2.Directive:
        directive, now = await self._write(lambda s, now: record_event(s, event=event, now=now))
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
