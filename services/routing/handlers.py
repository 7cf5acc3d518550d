"""The Routing gRPC methods."""

from __future__ import annotations

import grpc

from fengqiao import casestore
from fengqiao.db import Database
from fengqiao.errors import NotFound
from fengqiao.grpcutil import grpc_method
from fengqiao.topology import NodeSpec, Topology
from fengqiao.v1 import common_pb2, routing_pb2, routing_pb2_grpc
from services.routing import rules


def _hop(spec: NodeSpec) -> routing_pb2.RouteHop:
    return routing_pb2.RouteHop(code=spec.code, name=spec.name, tier=common_pb2.Tier.ValueType(spec.tier))


class RoutingHandlers(routing_pb2_grpc.RoutingServicer):
    """Tells where a case is held and where it would go next."""

    def __init__(self, *, db: Database, node_code: str, topology: Topology) -> None:
        self._db = db
        self._node = node_code
        self._topology = topology

    @grpc_method
    async def GetRoute(
        self, request: routing_pb2.GetRouteRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.Route:
        case = await self._db.run(lambda s: casestore.find_case(s, key=request.case_id))
        if case is None or not case.origin_node.startswith(self._node):
            raise NotFound(f"案件 {request.case_id} 不存在或不在本中心辖区")
        holder = self._topology.node(case.holder_node)
        return routing_pb2.Route(
            case_id=case.id,
            holder=_hop(holder),
            escalation_path=[_hop(s) for s in rules.escalation_path(self._topology, holder.code)],
        )
