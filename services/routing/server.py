"""Wiring of the routing service: its gRPC methods, the escalations and directive answers from
below, and the directives from above."""

from __future__ import annotations

from fengqiao.divisions import case_subject, down_stream, events_stream, subtree_subjects
from fengqiao.grpcutil import Registration
from fengqiao.node import NodeContext, ServiceParts
from fengqiao.v1 import routing_pb2_grpc
from services.routing import models  # noqa: F401  (registers the tables)
from services.routing.config import RoutingSettings
from services.routing.departments import DepartmentFile
from services.routing.directives import ANSWER_CONSUMER, DOWN_CONSUMER, directive_handler, directives_for
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
        departments=DepartmentFile(settings.departments_file),
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
        answers = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=ANSWER_CONSUMER,
            filter_subjects=[subtree_subjects(c.code, kind="directive") for c in children],
            handle=directive_handler(ctx.spec.code, ctx.clock, from_above=False),
        )
        parts.tasks += [consumer.run, answers.run]
    if ctx.topology.ancestors(ctx.spec.code):
        directives = ctx.consumer(
            stream=down_stream(ctx.spec.code),
            durable=DOWN_CONSUMER,
            filter_subjects=[directives_for(ctx.spec.code)],
            handle=directive_handler(ctx.spec.code, ctx.clock, from_above=True),
        )
        parts.tasks.append(directives.run)
    return parts
