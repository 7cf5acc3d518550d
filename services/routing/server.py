"""Wiring of the routing service: its gRPC methods, the escalations and directive answers from
below, the directives from above, and the county hub of 三联 joint cases and 联防 alerts."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fengqiao.divisions import Tier, case_subject, down_stream, events_stream, subtree_subjects
from fengqiao.grpcutil import Registration
from fengqiao.service import NodeContext, ServiceParts
from fengqiao.v1 import routing_pb2_grpc
from services.routing.config import RoutingSettings
from services.routing.consumers import ESCALATION_CONSUMER, escalation_handler
from services.routing.departments import DepartmentFile
from services.routing.directives import models as directive_models  # noqa: F401  (registers the tables)
from services.routing.directives.consumers import (
    ANSWER_CONSUMER,
    DOWN_CONSUMER,
    directive_answer_handler,
    directive_handler,
    directives_for,
)
from services.routing.handlers import RoutingHandlers
from services.routing.joint import models as joint_models  # noqa: F401
from services.routing.joint.consumers import (
    ALERT_HUB,
    ALERT_IN,
    JOINT_HUB,
    JOINT_IN,
    alert_hub_handler,
    alert_inbound_handler,
    joint_hub_handler,
    joint_inbound_handler,
    relayed_to,
)
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
        policy=PolicyFile(settings.policy_file, categories=ctx.settings.categories),
        departments=DepartmentFile(settings.departments_file),
        key=ctx.personal_key,
        on_commit=ctx.outbox_written,
    )
    parts = ServiceParts(
        registration=Registration("fengqiao.v1.Routing", routing_pb2_grpc.add_RoutingServicer_to_server, handlers)
    )
    children = ctx.topology.children(ctx.spec.code)
    if children:
        consumer = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=ESCALATION_CONSUMER,
            filter_subjects=[case_subject(c.code, "escalation_requested") for c in children],
            handle=escalation_handler(ctx.spec.code, settings, ctx.clock),
            on_applied=ctx.outbox_written,
        )
        answers = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=ANSWER_CONSUMER,
            filter_subjects=[subtree_subjects(c.code, kind="directive") for c in children],
            handle=directive_answer_handler(ctx.spec.code, ctx.clock),
        )
        parts.tasks += [consumer.run, answers.run]
    if ctx.topology.ancestors(ctx.spec.code):
        directives = ctx.consumer(
            stream=down_stream(ctx.spec.code),
            durable=DOWN_CONSUMER,
            filter_subjects=[directives_for(ctx.spec.code)],
            handle=directive_handler(ctx.spec.code, ctx.clock),
        )
        parts.tasks.append(directives.run)
    parts.tasks += _joint_consumers(ctx)
    return parts


def _joint_consumers(ctx: NodeContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """三联 and 联防 through the county hub: the county keeps and relays what its towns publish;
    a town takes what the county relays to it."""
    code, county = ctx.spec.code, ctx.topology.county.code
    if code == county:
        towns = [c.code for c in ctx.topology.children(code)]
        if not towns:  # no filter at all would mean every subject
            return []
        hubs = [
            ctx.consumer(
                stream=events_stream(code),
                durable=durable,
                # the towns' subtrees: what a village publishes as its town is a dead letter here
                filter_subjects=[subtree_subjects(town, kind=kind) for town in towns],
                handle=handle,
                on_applied=ctx.outbox_written,
            )
            for durable, kind, handle in (
                (JOINT_HUB, "joint", joint_hub_handler(ctx.topology, ctx.clock)),
                (ALERT_HUB, "alert", alert_hub_handler(ctx.topology, ctx.clock)),
            )
        ]
        return [hub.run for hub in hubs]
    if ctx.spec.tier is not Tier.TOWN:
        return []
    inbound = [
        ctx.consumer(stream=down_stream(code), durable=durable, filter_subjects=[relayed_to(code, kind)], handle=handle)
        for durable, kind, handle in (
            (JOINT_IN, "joint", joint_inbound_handler(code, county, ctx.clock)),
            (ALERT_IN, "alert", alert_inbound_handler(code, county)),
        )
    ]
    return [consumer.run for consumer in inbound]
