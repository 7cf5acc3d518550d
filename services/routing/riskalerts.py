"""联防 risk alerts over gRPC: a town raises one to its neighbouring towns (a brewing boundary
dispute, a wanted vehicle, a missing person); the county hub relays it, buffered through link
outages; each addressee acknowledges, and the acknowledgement travels back the same way."""

from __future__ import annotations

import uuid

import grpc

from fengqiao.divisions import Tier
from fengqiao.errors import IllegalTransition, InvalidArgument, NotFound
from fengqiao.grpcutil import grpc_method, page_bounds
from fengqiao.v1 import common_pb2
from fengqiao.v1 import routing_pb2 as pb
from services.routing import jointstore
from services.routing.jointrelay import record_alert
from services.routing.steps import RoutingBase


class RiskAlertMethods(RoutingBase):
    """Raising, acknowledging and listing 联防 risk alerts."""

    def _alert_event(self, alert_id: str, actor: str) -> pb.RiskAlertEvent:
        if not actor.strip():
            raise InvalidArgument("actor", "操作人不能为空")
        event = pb.RiskAlertEvent(id=str(uuid.uuid4()), alert_id=alert_id, node=self._node, actor=actor)
        event.at.FromDatetime(self._clock.now())
        return event

    async def _record_alert(self, event: pb.RiskAlertEvent) -> pb.RiskAlert:
        now = self._clock.now()
        alert = await self._db.write(lambda s: record_alert(s, event=event, now=now))
        self._on_commit()
        return alert

    @grpc_method
    async def RaiseRiskAlert(
        self, request: pb.RaiseRiskAlertRequest, context: grpc.aio.ServicerContext
    ) -> pb.RiskAlert:
        spec = self._topology.node(self._node)
        if spec.tier is not Tier.TOWN:
            raise IllegalTransition("只有乡镇综治中心可以向相邻乡镇发出联防预警")
        to_nodes = list(request.to_nodes) or list(spec.neighbours)
        strangers = [code for code in to_nodes if code not in spec.neighbours]
        if strangers:
            raise InvalidArgument("to_nodes", f"{'、'.join(strangers)} 不是本镇的相邻乡镇")
        event = self._alert_event(str(uuid.uuid4()), request.actor)
        event.raised.CopyFrom(
            pb.RiskAlert(
                from_node=self._node,
                to_nodes=sorted(set(to_nodes)),
                kind=request.kind,
                title=request.title,
                body=request.body,
                level=request.level or "medium",
            )
        )
        return await self._record_alert(event)

    @grpc_method
    async def AcknowledgeRiskAlert(
        self, request: pb.AcknowledgeRiskAlertRequest, context: grpc.aio.ServicerContext
    ) -> pb.RiskAlert:
        current = await self._db.read(lambda s: jointstore.get_alert(s, alert_id=request.id))
        if current is None or self._node not in current.to_nodes:
            raise NotFound(f"本中心没有收到编号为 {request.id} 的联防预警")
        event = self._alert_event(request.id, request.actor)
        event.acknowledged = request.note
        return await self._record_alert(event)

    @grpc_method
    async def ListRiskAlerts(
        self, request: pb.ListRiskAlertsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRiskAlertsResponse:
        if request.direction not in ("", "in", "out"):
            raise InvalidArgument("direction", "direction 须为 in（收到的）、out（发出的）或留空")
        offset, size = page_bounds(request.page)
        node = "" if self._node == self._topology.county.code else self._node
        rows = await self._db.read(
            lambda s: jointstore.list_alerts(s, node=node, direction=request.direction, offset=offset, limit=size + 1)
        )
        token = str(offset + size) if len(rows) > size else ""
        return pb.ListRiskAlertsResponse(alerts=rows[:size], page=common_pb2.PageInfo(next_page_token=token))
