"""Wiring of the assessment service: its gRPC methods and, at a node with children, the sync of
the subtree's projects (``consumers``)."""

from __future__ import annotations

import services.assessment.models  # noqa: F401  (registers the tables)
from fengqiao.divisions import events_stream, subtree_subjects
from fengqiao.grpcutil import Registration
from fengqiao.service import NodeContext, ServiceParts
from fengqiao.v1 import assessment_pb2_grpc
from services.assessment.config import AssessmentSettings
from services.assessment.consumers import SYNC_CONSUMER, project_event_handler
from services.assessment.handlers import AssessmentHandlers
from services.assessment.policy import PolicyFile


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
