"""Figures and reports over HTTP (docs/ARCHITECTURE.md, *Figures*): node figures, 红黑榜, 研判预警, the provincial
feed and the 月报 download. Everything is computed by the Federation service over gRPC."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from google.protobuf.message import Message

from fengqiao.v1 import federation_pb2
from gateway.deps import Context, ReadsFigures, Services, require_scope, scope_of
from gateway.routes.cases import as_json

router = APIRouter(prefix="/api/v1")

Period = Annotated[str, Query(description="统计周期：2026-11-22、2026-11、2026Q4 或 2026；不填为全部")]


@router.get("/nodes/{code}/stats", summary="节点统计数据（周期：2026-11、2026Q4、2026、2026-11-22）")
async def node_stats(
    code: str,
    who: ReadsFigures,
    api: Services,
    period: Period = "",
    children: Annotated[bool, Query(description="同时返回各下级节点的数据")] = False,
    categories: Annotated[bool, Query(description="同时返回本周期各类别的受理数（案件类别分布）")] = False,
) -> dict[str, Any]:
    require_scope(who, code)
    request = federation_pb2.GetNodeStatsRequest(
        code=code, period=period, include_children=children, include_categories=categories
    )
    return as_json(await api.federation.GetNodeStats(request))


@dataclasses.dataclass(frozen=True)
class StandingsPage:
    """Which standings of a ranking to answer: all, or the red or black list, one page of them."""

    which: str
    offset: int
    limit: int

    def of(self, ranking: Message) -> dict[str, Any]:
        """The ranking's figures with this page of its standings."""
        body = as_json(ranking)
        chosen = [i for i in body.pop("standings") if not self.which or i["list"] == self.which]
        return {**body, "total": len(chosen), "items": chosen[self.offset : self.offset + self.limit]}


def standings_page(
    list: Annotated[Literal["", "red", "black"], Query(description="red 红榜，black 黑榜，不填为全部")] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> StandingsPage:
    return StandingsPage(list, offset, limit)


Standings = Annotated[StandingsPage, Depends(standings_page)]


@router.get("/rankings/departments", summary="部门红黑榜（按季度：签收率、按期办结率、退单率、满意度）")
async def department_ranking(
    who: ReadsFigures,
    api: Services,
    ctx: Context,
    period: Period,
    standings: Standings,
    code: str = "",
) -> dict[str, Any]:
    target = scope_of(who, ctx, code)
    reply = await api.federation.RankDepartments(federation_pb2.RankingRequest(code=target, period=period))
    return standings.of(reply)


@router.get("/rankings/grid-workers", summary="网格员排行（按月：上报数、办结率、评价得分）")
async def grid_worker_ranking(
    who: ReadsFigures,
    api: Services,
    ctx: Context,
    period: Period,
    standings: Standings,
    code: str = "",
) -> dict[str, Any]:
    target = scope_of(who, ctx, code)
    reply = await api.federation.RankGridWorkers(federation_pb2.RankingRequest(code=target, period=period))
    return standings.of(reply)


@router.get("/alerts", summary="研判预警：某类案件在某地明显高于其自身近期基线")
async def alerts(
    who: ReadsFigures,
    api: Services,
    ctx: Context,
    code: str = "",
    category: str = "",
    at: Annotated[dt.datetime | None, Query(description="按此时间研判（默认当前）")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    request = federation_pb2.ListAlertsRequest(code=scope_of(who, ctx, code))
    if at is not None:
        request.at.FromDatetime(at if at.tzinfo else at.replace(tzinfo=dt.UTC))
    body = as_json(await api.federation.ListAlerts(request))
    items = [a for a in body["alerts"] if not category or a["category"] == category]
    return {"stale": body["stale"], "stale_nodes": body["stale_nodes"], "total": len(items),
            "items": items[offset : offset + limit]}  # fmt: skip


@router.get("/feed/provincial", summary="省级数据上报（已签名、不含个人信息的 JSON）")
async def provincial_feed(who: ReadsFigures, api: Services, ctx: Context, period: Period) -> Response:
    require_scope(who, ctx.spec.code)
    reply = await api.federation.GetProvincialFeed(federation_pb2.FeedRequest(period=period))
    return Response(content=reply.json, media_type="application/json", headers={"X-Fengqiao-Key-Id": reply.key_id})


@router.get("/feed/provincial/key", summary="省级数据上报的验签公钥（Ed25519，无需登录）")
async def provincial_feed_key(api: Services) -> dict[str, Any]:
    return as_json(await api.federation.GetFeedKey(federation_pb2.FeedKeyRequest()))


@router.get("/reports/monthly", summary="月报下载（CSV 或 XLSX，中文表头）")
async def monthly_report(
    who: ReadsFigures,
    api: Services,
    ctx: Context,
    period: Annotated[str, Query(description="统计月份，如 2026-11")],
    format: Annotated[Literal["csv", "xlsx"], Query(description="csv 或 xlsx")] = "xlsx",
    code: str = "",
) -> Response:
    request = federation_pb2.MonthlyReportRequest(code=scope_of(who, ctx, code), period=period, format=format)
    reply = await api.federation.GetMonthlyReport(request)
    disposition = f"attachment; filename=\"report.{format}\"; filename*=UTF-8''{quote(reply.filename)}"
    return Response(content=reply.content, media_type=reply.content_type, headers={"Content-Disposition": disposition})
