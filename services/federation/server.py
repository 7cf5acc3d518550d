"""Wiring of the federation service: its gRPC methods and the subtree sync.

The sync consumes the events the node's stream sources from the nodes below and stores them
in this node's case log, once each (inbox), so figures cover the whole subtree.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao import casestore
from fengqiao.bus import BadMessage, Handler, InboxConsumer
from fengqiao.clock import Clock
from fengqiao.divisions import events_stream, is_within, subtree_subjects
from fengqiao.errors import IllegalTransition
from fengqiao.grpcutil import Registration
from fengqiao.node import NodeContext, ServiceParts
from fengqiao.v1 import case_pb2, federation_pb2_grpc
from services.federation.config import FederationSettings
from services.federation.handlers import FederationHandlers

SYNC_CONSUMER = "fq-subtree-sync"


def subtree_event_handler(node_code: str, clock: Clock) -> Handler:
    """The inbox handler storing an event from below; malformed ones become dead letters."""

    def handle(session: Session, msg: Msg) -> None:
        try:
            event = case_pb2.CaseEvent.FromString(msg.data)
        except DecodeError as exc:
            raise BadMessage(f"无法解析的案件事件：{exc}") from exc
        if not event.id or not event.case_id or event.seq < 1:
            raise BadMessage("案件事件缺少编号、案件编号或序号")
        if not is_within(event.node, node_code):
            raise BadMessage(f"事件来自辖区外的节点 {event.node}")
        try:
            casestore.store_replicated(session, event=event, now=clock.now())
        except IllegalTransition as exc:
            raise BadMessage(exc.message) from exc

    return handle


def create(ctx: NodeContext) -> ServiceParts:
    """Federation answers for the subtree; nodes with children also sync it."""
    settings = FederationSettings()
    handlers = FederationHandlers(db=ctx.db, node_code=ctx.spec.code, topology=ctx.topology, nc=ctx.nc, js=ctx.js)
    parts = ServiceParts(
        registration=Registration(
            "fengqiao.v1.Federation", federation_pb2_grpc.add_FederationServicer_to_server, handlers
        )
    )
    children = ctx.topology.children(ctx.spec.code)
    if children:
        consumer = InboxConsumer(
            js=ctx.js,
            db=ctx.db,
            stream=events_stream(ctx.spec.code),
            durable=SYNC_CONSUMER,
            filter_subjects=[subtree_subjects(c.code) for c in children],
            handle=subtree_event_handler(ctx.spec.code, ctx.clock),
            now=ctx.clock.now,
            batch=settings.sync_batch,
        )
        parts.tasks.append(consumer.run)
    return parts
