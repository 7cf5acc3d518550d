"""Wiring of the assessment service: its gRPC methods and the sync of the subtree's projects.

A node with children stores, once each (inbox), the project events its events stream sources
from below, so the county lists every project of the county with its gates, hazards and disputes.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from sqlmodel import Session

import services.assessment.models  # noqa: F401  (registers the tables)
from fengqiao.divisions import events_stream, is_within, subtree_subjects
from fengqiao.errors import IllegalTransition, NotFound
from fengqiao.grpcutil import Registration
from fengqiao.inbox import BadMessage, Handler
from fengqiao.service import NodeContext, ServiceParts
from fengqiao.v1 import assessment_pb2, assessment_pb2_grpc
from services.assessment import store
from services.assessment.config import AssessmentSettings
from services.assessment.handlers import AssessmentHandlers
from services.assessment.policy import PolicyFile

SYNC_CONSUMER = "fq-assessment-sync"


def project_event_handler(node_code: str) -> Handler:
    """The inbox handler storing a project event replicated from below; malformed ones become dead letters."""

    def handle(session: Session, msg: Msg) -> None:
        try:
            event = assessment_pb2.ProjectEvent.FromString(msg.data)
        except DecodeError as exc:
            raise BadMessage(f"无法解析的项目事件：{exc}") from exc
        if not event.id or not event.project_id or event.seq < 1 or event.WhichOneof("payload") is None:
            raise BadMessage("项目事件缺少编号、项目编号、序号或内容")
        if not is_within(event.node, node_code) or event.node == node_code:
            raise BadMessage(f"项目事件来自辖区外的节点 {event.node}")
        try:
            store.store_replicated(session, event=event)
        except (IllegalTransition, NotFound) as exc:
            raise BadMessage(exc.message) from exc

    return handle


def create(ctx: NodeContext) -> ServiceParts:
    """Assessment runs 四必评 for the projects registered here; nodes with children sync theirs."""
    settings = AssessmentSettings()
    handlers = AssessmentHandlers(
        db=ctx.db,
        node_code=ctx.spec.code,
        clock=ctx.clock,
        rule=PolicyFile(settings.policy_file),
        settings=settings,
        on_commit=ctx.outbox_written,
    )
    parts = ServiceParts(
        registration=Registration(
            "fengqiao.v1.Assessment", assessment_pb2_grpc.add_AssessmentServicer_to_server, handlers
        )
    )
    children = ctx.topology.children(ctx.spec.code)
    if children:
        consumer = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=SYNC_CONSUMER,
            filter_subjects=[subtree_subjects(c.code, kind="project") for c in children],
            handle=project_event_handler(ctx.spec.code),
            batch=settings.sync_batch,
        )
        parts.tasks.append(consumer.run)
    return parts
