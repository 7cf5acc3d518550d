"""Wiring of the routing service: its gRPC methods and the escalations from below."""

from __future__ import annotations

from fengqiao.divisions import case_subject, events_stream
from fengqiao.grpcutil import Registration
from fengqiao.node import NodeContext, ServiceParts
from fengqiao.v1 import routing_pb2_grpc
from services.routing.config import RoutingSettings
from services.routing.escalations import CONSUMER, escalation_handler
from services.routing.handlers import RoutingHandlers
from services.routing.policy import PolicyFile


def create(ctx: NodeContext) -> ServiceParts:
    """Routing answers where a case is held, escalates, and takes escalations from below."""
    settings = RoutingSettings()
    handlers = RoutingHandlers(
        db=ctx.db,
        node_code=ctx.spec.code,
        topology=ctx.topology,
        settings=settings,
        clock=ctx.clock,
        policy=PolicyFile(settings.policy_file),
        on_commit=ctx.outbox_written,
    )
    parts = ServiceParts(
        registration=Registration("fengqiao.v1.Routing", routing_pb2_grpc.add_RoutingServicer_to_server, handlers)
    )
    children = ctx.topology.children(ctx.spec.code)
    if children:
        consumer = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=CONSUMER,
            filter_subjects=[case_subject(c.code, "escalation_requested") for c in children],
            handle=escalation_handler(ctx.spec.code, settings, ctx.clock),
            on_applied=ctx.outbox_written,
        )
        parts.tasks.append(consumer.run)
    return parts
