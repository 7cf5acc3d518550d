"""Downward commands (指令/交办): sent down the down streams, which buffer through link outages,
and answered (签收, 办结) up the events streams. Sender and receiver each keep a copy, changed
only through ``rules.apply_directive``, in the same transaction as the outbox or inbox row."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao import outbox
from fengqiao.clock import Clock
from fengqiao.divisions import address_tokens, down_subject, event_subject, is_within
from fengqiao.errors import FengqiaoError, InvalidArgument, NotFound
from fengqiao.grpcutil import grpc_method, page_bounds
from fengqiao.inbox import BadMessage, Handler
from fengqiao.security import audit
from fengqiao.telemetry import current_headers
from fengqiao.v1 import common_pb2, routing_pb2
from services.routing import rules, store
from services.routing.steps import RoutingBase

DOWN_CONSUMER = "fq-directives-in"
ANSWER_CONSUMER = "fq-directive-answers"


def directives_for(code: str) -> str:
    """The down subjects of directives addressed to ``code`` itself, from any center above."""
    return f"fq.*.*.*.down.{address_tokens(code)}.directive.>"


def _overdue(directive: routing_pb2.Directive, now: dt.datetime) -> routing_pb2.Directive:
    directive.overdue = (
        directive.status != routing_pb2.DIRECTIVE_STATUS_COMPLETED
        and directive.HasField("deadline")
        and directive.deadline.ToDatetime(tzinfo=dt.UTC) < now
    )
    return directive


def record_event(
    session: Session, *, event: routing_pb2.DirectiveEvent, subject: str, now: dt.datetime
) -> routing_pb2.Directive:
    """Apply a directive event of this node, keep the result, and queue the event for the bus."""
    current = store.get_directive(session, directive_id=event.directive_id)
    directive = rules.apply_directive(current, event)
    store.put_directive(session, directive=directive, now=now)
    message = outbox.Message(subject, event.id, event.SerializeToString(), current_headers())
    outbox.enqueue_many(session, messages=[message], now=now)
    entry = audit.Entry(now, event.node, event.actor, f"directive.{event.WhichOneof('payload')}", directive.id)
    audit.record(session, [entry])
    return directive


def directive_handler(node_code: str, clock: Clock, *, from_above: bool) -> Handler:
    """Inbox handler: directives addressed here (``from_above``), or answers to ours from below."""

    def handle(session: Session, msg: Msg) -> None:
        try:
            event = routing_pb2.DirectiveEvent.FromString(msg.data)
        except DecodeError as exc:
            raise BadMessage(f"无法解析的指令事件：{exc}") from exc
        kind = event.WhichOneof("payload")
        if not event.id or not event.directive_id or not event.node or kind is None:
            raise BadMessage("指令事件缺少编号、指令编号、发出中心或内容")
        if from_above:
            if kind != "issued" or event.issued.to_node != node_code:
                raise BadMessage("下行指令不是发给本中心的下达事件")
            if event.node == node_code or not is_within(node_code, event.node):
                raise BadMessage(f"指令来自非上级中心 {event.node}")
        current = store.get_directive(session, directive_id=event.directive_id)
        if not from_above and (current is None or current.from_node != node_code):
            return  # an answer to another center's directive, passing through this subtree
        try:
            directive = rules.apply_directive(current, event)
        except FengqiaoError as exc:
            raise BadMessage(exc.message) from exc
        store.put_directive(session, directive=directive, now=clock.now())

    return handle


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

    async def _record(self, event: routing_pb2.DirectiveEvent, subject: str) -> routing_pb2.Directive:
        now = self._clock.now()
        directive = await self._db.write(lambda s: record_event(s, event=event, subject=subject, now=now))
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
        return await self._record(event, down_subject(self._node, request.to_node, "directive", "issued"))

    async def _answer(self, request: routing_pb2.DirectiveActionRequest, kind: str) -> routing_pb2.Directive:
        current = await self._db.read(lambda s: store.get_directive(s, directive_id=request.id))
        if current is None or current.to_node != self._node:
            raise NotFound(f"本中心没有收到编号为 {request.id} 的指令")
        event = self._event(request.id, request.actor)
        setattr(event, kind, request.text)
        return await self._record(event, event_subject(self._node, "directive", kind))

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
