"""The Federation gRPC methods: figures of a node's subtree and the state of its nodes."""

from __future__ import annotations

import datetime as dt
import logging

import grpc
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlmodel import Session

from fengqiao import casestore, lifecycle, outbox
from fengqiao.db import Database
from fengqiao.divisions import events_stream, is_within
from fengqiao.errors import NotFound
from fengqiao.grpcutil import grpc_method
from fengqiao.topology import NodeSpec, Topology
from fengqiao.v1 import common_pb2, federation_pb2, federation_pb2_grpc
from services.federation import rules, store

log = logging.getLogger(__name__)


class FederationHandlers(federation_pb2_grpc.FederationServicer):
    """Answers for this node and everything below it."""

    def __init__(self, *, db: Database, node_code: str, topology: Topology, nc: NATS, js: JetStreamContext) -> None:
        self._db = db
        self._node = node_code
        self._topology = topology
        self._nc = nc
        self._js = js

    def _visible(self, code: str) -> NodeSpec:
        if not is_within(code, self._node) or not self._topology.knows(code):
            raise NotFound(f"节点 {code} 不存在或不在本中心辖区")
        return self._topology.node(code)

    @grpc_method
    async def GetNodeStats(
        self, request: federation_pb2.GetNodeStatsRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.NodeStats:
        spec = self._visible(request.code or self._node)
        period = rules.parse_period(request.period)

        def figures(session: Session) -> tuple[int, int, dt.datetime | None]:
            received = store.count_received(session, within=spec.code, start=period.start, end=period.end)
            closed = store.count_closed(
                session,
                within=spec.code,
                start=period.start,
                end=period.end,
                statuses=[int(s) for s in lifecycle.CLOSED_STATUSES],
            )
            latest = casestore.latest_event_at(session, within=spec.code)
            return received, closed, latest

        received, closed, latest = await self._db.run(figures)
        stats = federation_pb2.NodeStats(
            code=spec.code,
            name=spec.name,
            tier=common_pb2.Tier.ValueType(spec.tier),
            period=period.label,
            received=received,
            closed=closed,
            closure_rate=federation_pb2.Rate(
                numerator=closed, denominator=received, value=rules.rate(closed, received)
            ),
        )
        stats.period_start.FromDatetime(period.start)
        stats.period_end.FromDatetime(min(period.end, dt.datetime(9999, 1, 1, tzinfo=dt.UTC)))
        if latest is not None:
            stats.latest_event_at.FromDatetime(latest)
        return stats

    async def _source_links(self) -> dict[str, tuple[str, int]]:
        """Link state and lag of every sourced stream in the subtree, by node code."""
        links: dict[str, tuple[str, int]] = {}
        for spec in self._topology.subtree(self._node):
            if not self._topology.children(spec.code):
                continue
            try:
                info = await self._js.stream_info(events_stream(spec.code))
            except Exception as exc:  # another node's stream may not exist yet
                log.debug("no stream info for %s: %s", spec.code, exc)
                continue
            for source in info.sources or []:
                code = source.name.removeprefix("FQ_EVENTS_")
                state = "down" if source.error else "up"
                links[code] = (state, int(source.lag or 0))
        return links

    @grpc_method
    async def ListNodes(
        self, request: federation_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListNodesResponse:
        links = await self._source_links()
        own_pending = await self._db.run(outbox.pending_count)
        nodes = []
        for spec in self._topology.subtree(self._node):
            if spec.parent is None:
                link, lag = "n/a", 0
            elif spec.code == self._node:
                link = "up" if self._nc.is_connected else "down"
                lag = own_pending + links.get(spec.code, ("", 0))[1]
            else:
                link, lag = links.get(spec.code, ("unknown", 0))
            nodes.append(
                federation_pb2.NodeInfo(
                    code=spec.code,
                    name=spec.name,
                    tier=common_pb2.Tier.ValueType(spec.tier),
                    parent=spec.parent or "",
                    grpc_address=spec.grpc_address,
                    http_address=spec.http_address,
                    upstream_link=link,
                    upstream_lag=lag,
                    sample=self._topology.sample_codes,
                )
            )
        return federation_pb2.ListNodesResponse(nodes=nodes)
