"""Wiring of the routing service."""

from __future__ import annotations

from fengqiao.grpcutil import Registration
from fengqiao.node import NodeContext, ServiceParts
from fengqiao.v1 import routing_pb2_grpc
from services.routing.handlers import RoutingHandlers


def create(ctx: NodeContext) -> ServiceParts:
    """Routing answers where a case is held and its way up."""
    handlers = RoutingHandlers(db=ctx.db, node_code=ctx.spec.code, topology=ctx.topology)
    return ServiceParts(
        registration=Registration("fengqiao.v1.Routing", routing_pb2_grpc.add_RoutingServicer_to_server, handlers)
    )
