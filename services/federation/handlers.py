"""The Federation gRPC methods: figures, 红黑榜, alerts, the provincial feed and the 月报."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlmodel import Session

from fengqiao import bus, inbox, outbox, quarantine
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.divisions import Tier, is_within, subject_tokens
from fengqiao.errors import IllegalTransition, InvalidArgument, NotFound, PermissionDenied
from fengqiao.grpcutil import grpc_method
from fengqiao.security.peers import peer_code
from fengqiao.service import FigureSource
from fengqiao.topology import NodeSpec, Topology
from fengqiao.v1 import common_pb2, federation_pb2, federation_pb2_grpc
from services.federation import checkpoints, feed, keys, report, rules, snapshot, store, views, warning
from services.federation.config import FederationSettings
from services.federation.links import subtree_links


def feed_subject(county: str) -> str:
    """The subject the province reads a county's feed on: ``fq.<county>._._.feed.provincial``."""
    return "fq.{}.{}.{}.feed.provincial".format(*subject_tokens(county))


def feed_stream(county: str) -> str:
    return f"FQ_FEED_{county}"


@dataclasses.dataclass
class Deps:
    """What the handlers are built from."""

    db: Database
    node_code: str
    topology: Topology
    nc: NATS
    js: JetStreamContext
    clock: Clock
    settings: FederationSettings
    feed_key: Ed25519PrivateKey | None  # the county's; None below the county
    figure_sources: tuple[FigureSource, ...] = ()  # other services' counts in the figures


class FederationHandlers(federation_pb2_grpc.FederationServicer):
    """Answers for this node and everything below it."""

    def __init__(self, deps: Deps) -> None:
        self._d = deps
        self._db = deps.db
        self._node = deps.node_code
        self._topology = deps.topology
        self._nc = deps.nc
        self._js = deps.js
        self._stale_after = dt.timedelta(hours=deps.settings.stale_after_hours)

    def _visible(self, code: str) -> NodeSpec:
        if not is_within(code, self._node) or not self._topology.knows(code):
            raise NotFound(f"节点 {code} 不存在或不在本中心辖区")
        return self._topology.node(code)

    async def _snapshot(self, code: str, period: rules.Period) -> snapshot.Snapshot:
        now = self._d.clock.now()

        def take(session: Session) -> snapshot.Snapshot:
            return snapshot.take(
                session,
                topology=self._topology,
                code=code,
                period=period,
                now=now,
                stale_after=self._stale_after,
                sources=self._d.figure_sources,
            )

        return await self._db.read(take)

    @grpc_method
    async def GetNodeStats(
        self, request: federation_pb2.GetNodeStatsRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.NodeStats:
        spec = self._visible(request.code or self._node)
        period = rules.parse_period(request.period)
        snap = await self._snapshot(spec.code, period)
        stats = views.node_stats(snap, spec.code, include_children=request.include_children)
        if request.include_categories:
            counts = await self._db.read(
                lambda s: store.counts_by(s, within=spec.code, start=period.start, end=period.end, key="category")
            )
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            stats.categories.extend(federation_pb2.CategoryCount(category=str(c), received=n) for c, n in ranked)
        return stats

    @grpc_method
    async def RankDepartments(
        self, request: federation_pb2.RankingRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.DepartmentRanking:
        spec = self._visible(request.code or self._node)
        period, now, s = rules.parse_period(request.period), self._d.clock.now(), self._d.settings
        tallies = await self._db.read(
            lambda session: store.department_tallies(
                session, within=spec.code, start=period.start, end=period.end, now=now
            )
        )
        snap = await self._snapshot(spec.code, period)
        return federation_pb2.DepartmentRanking(
            code=spec.code,
            period=period.label,
            min_sample=s.ranking_min_assignments,
            standings=views.department_standings(
                tallies, min_sample=s.ranking_min_assignments, list_size=s.ranking_list_size
            ),
            stale=snap.stale(spec.code),
            stale_nodes=snap.stale_nodes(spec.code),
        )

    @grpc_method
    async def RankGridWorkers(
        self, request: federation_pb2.RankingRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.GridWorkerRanking:
        spec = self._visible(request.code or self._node)
        period, s = rules.parse_period(request.period), self._d.settings
        tallies = await self._db.read(
            lambda session: store.grid_worker_tallies(session, within=spec.code, start=period.start, end=period.end)
        )
        snap = await self._snapshot(spec.code, period)
        return federation_pb2.GridWorkerRanking(
            code=spec.code,
            period=period.label,
            min_sample=s.ranking_min_reports,
            standings=views.grid_worker_standings(
                tallies, min_sample=s.ranking_min_reports, list_size=s.ranking_list_size
            ),
            stale=snap.stale(spec.code),
            stale_nodes=snap.stale_nodes(spec.code),
        )

    @grpc_method
    async def ListAlerts(
        self, request: federation_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListAlertsResponse:
        spec = self._visible(request.code or self._node)
        s = self._d.settings
        rule = warning.WarningRule(
            s.warning_recent_days, s.warning_baseline_days, s.warning_alpha, s.warning_min_count, s.warning_min_ratio
        )
        at = request.at.ToDatetime(tzinfo=dt.UTC) if request.HasField("at") else self._d.clock.now()
        first, recent_start, end = warning.window(at, rule)
        received = await self._db.read(
            lambda session: store.received_days(session, within=spec.code, start=first, end=end)
        )
        areas = {n.code: n for n in self._topology.subtree(spec.code)}
        series = warning.daily_series(
            received,
            areas=list(areas),
            first_day=warning.local_day(first),
            days=rule.baseline_days + rule.recent_days,
        )
        alerts = views.alerts(series, rule, names={c: n.name for c, n in areas.items()}, start=recent_start, end=end)
        snap = await self._snapshot(spec.code, rules.Period("预警", first, end))
        return federation_pb2.ListAlertsResponse(
            alerts=alerts, stale=snap.stale(spec.code), stale_nodes=snap.stale_nodes(spec.code)
        )

    def _county_key(self) -> Ed25519PrivateKey:
        if self._d.feed_key is None or self._topology.node(self._node).tier is not Tier.COUNTY:
            raise IllegalTransition("省级数据上报只由县级综治中心生成")
        return self._d.feed_key

    async def feed_document(self, period_text: str) -> tuple[bytes, str]:
        """The signed feed of this county for a period, as served: canonical JSON and key id."""
        key = self._county_key()
        if not period_text.strip():
            raise InvalidArgument("period", "请指定统计周期，如 2026-10、2026Q4 或 2026")
        period = rules.parse_period(period_text)
        snap = await self._snapshot(self._node, period)
        signed = feed.sign(feed.from_snapshot(snap), key)
        return feed.canonical(signed), signed["key_id"]

    @grpc_method
    async def GetProvincialFeed(
        self, request: federation_pb2.FeedRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.FeedDocument:
        data, key_id = await self.feed_document(request.period)
        return federation_pb2.FeedDocument(json=data, key_id=key_id)

    async def publish_feed(self, period_text: str) -> federation_pb2.FeedPublished:
        """Publish the feed on the county's feed stream (JetStream; deduplicated by content)."""
        data, key_id = await self.feed_document(period_text)
        subject, stream = feed_subject(self._node), feed_stream(self._node)
        await bus.ensure_stream(self._js, name=stream, subjects=[subject])
        msg_id = f"feed:{self._node}:{period_text}:{hashlib.sha256(data).hexdigest()[:24]}"
        ack = await self._js.publish(subject, data, stream=stream, headers={bus.MSG_ID: msg_id})
        return federation_pb2.FeedPublished(subject=subject, stream=stream, sequence=ack.seq, key_id=key_id)

    @grpc_method
    async def PublishProvincialFeed(
        self, request: federation_pb2.FeedRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.FeedPublished:
        return await self.publish_feed(request.period)

    @grpc_method
    async def GetFeedKey(
        self, request: federation_pb2.FeedKeyRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.FeedKey:
        public = self._county_key().public_key()
        return federation_pb2.FeedKey(
            key_id=keys.key_id(public), algorithm="Ed25519", public_key_pem=keys.public_pem(public), county=self._node
        )

    @grpc_method
    async def GetMonthlyReport(
        self, request: federation_pb2.MonthlyReportRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ReportFile:
        spec = self._visible(request.code or self._node)
        kind = request.format or "xlsx"
        if kind not in report.CONTENT_TYPES:
            raise InvalidArgument("format", "报表格式应为 csv 或 xlsx")
        if not request.period.strip():
            raise InvalidArgument("period", "请指定统计月份，如 2026-11")
        period = rules.parse_period(request.period)
        snap = await self._snapshot(spec.code, period)

        def unit(node: NodeSpec) -> report.Unit:
            return report.Unit(node.code, node.name, snap.tallies[node.code], snap.stale(node.code))

        units = [unit(n) for n in sorted(snap.nodes.values(), key=lambda n: n.code) if n.code != spec.code]
        render = report.to_csv if kind == "csv" else report.to_xlsx
        content = render(unit(spec), units, period=period, generated_at=snap.generated_at)
        return federation_pb2.ReportFile(
            content=content,
            content_type=report.CONTENT_TYPES[kind],
            filename=f"{spec.code}-月报-{period.label}.{kind}",
        )

    @grpc_method
    async def ListAuditCheckpoints(
        self, request: federation_pb2.ListAuditCheckpointsRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListAuditCheckpointsResponse:
        node = request.node
        if not node or node == self._node:
            raise InvalidArgument("node", "请指定本中心下级的一个中心（本中心的检查点由其上级保存）")
        spec = self._visible(node)
        caller = peer_code(context)
        if caller and caller != self._node and not is_within(spec.code, caller):
            raise PermissionDenied(f"节点 {caller} 无权读取 {spec.code} 的审计检查点")
        held = await self._db.read(lambda s: checkpoints.held(s, node=spec.code))
        return federation_pb2.ListAuditCheckpointsResponse(checkpoints=held)

    @grpc_method
    async def ListNodes(
        self, request: federation_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListNodesResponse:
        own_pending = await self._db.run(outbox.pending_count)
        kept = await self._db.read(quarantine.summary)
        refused = await self._db.read(inbox.rejected)
        links = await subtree_links(
            nc=self._nc, js=self._js, topology=self._topology, code=self._node, outbox_pending=own_pending
        )
        nodes = []
        for spec in self._topology.subtree(self._node):
            link = links[spec.code]
            own = spec.code == self._node
            info = federation_pb2.NodeInfo(
                code=spec.code,
                name=spec.name,
                tier=common_pb2.Tier.ValueType(spec.tier),
                parent=spec.parent or "",
                grpc_address=spec.grpc_address,
                http_address=spec.http_address,
                upstream_link=link.state,
                upstream_lag=link.lag,
                sample=self._topology.sample_codes,
                outbox_quarantined=kept.rows if own else 0,
                outbox_quarantine_reason=kept.reason if own else "",
                outbox_held=kept.held if own else [],
                dead_letters=refused.dead_letters if own else 0,
                forged_messages=sum(refused.forged.values()) if own else 0,
                forged_latest_reason=refused.latest_forged if own else "",
            )
            if own and kept.oldest is not None:
                info.outbox_quarantined_since.FromDatetime(kept.oldest)
            nodes.append(info)
        return federation_pb2.ListNodesResponse(nodes=nodes)
