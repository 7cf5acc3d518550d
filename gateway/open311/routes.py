"""Open311 GeoReport v2 (JSON) under ``/open311/v2/`` (http://wiki.open311.org/GeoReport_v2).

Services are the county's case categories (the node setting ``FQ_CATEGORIES``); a request
becomes a case through intake (channel 12345转办, the Chinese 311); ``jurisdiction_id`` is a
division code at or below this node. Reads are public and carry no personal data (parties'
names, ID numbers and phones are masked in the description, the address is the village or town,
coordinates are rounded to about 1 km).
Errors follow the spec: a list of ``{"code", "description"}`` with a Chinese description.
"""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse

from fengqiao.security import auth
from fengqiao.security.records import ApiKey
from fengqiao.v1 import case_pb2, common_pb2, intake_pb2
from gateway.deps import Context, Services
from gateway.open311.format import GROUPS, as_request, definition, parse_time

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
CHANNEL = "12345转办"
MAX_RESULTS = 1000
MAX_RANGE = dt.timedelta(days=90)
Text = Annotated[str, Form()]


class Open311Error(Exception):
    """An error answered in the spec's format."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def install(app: FastAPI) -> None:
    """Answer Open311 errors (and service errors under /open311) as ``[{"code", "description"}]``."""

    @app.exception_handler(Open311Error)
    async def _error(_request: Request, exc: Open311Error) -> JSONResponse:
        return JSONResponse([{"code": exc.status, "description": exc.description}], status_code=exc.status)


def _jurisdiction(ctx: Context, jurisdiction_id: str) -> str:
    code = jurisdiction_id or ctx.spec.code
    if not code.startswith(ctx.spec.code) or not ctx.topology.knows(code):
        raise Open311Error(404, f"jurisdiction_id {code} 不是本中心（{ctx.spec.code}）或其下级的行政区划代码")
    return code


async def _rpc(call: Any) -> Any:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        status = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404}.get(exc.code(), 503)
        raise Open311Error(status, exc.details() or "服务暂不可用") from exc


async def _api_key(ctx: Context, api_key: str) -> ApiKey | None:
    """The registered key; the node's own ``FQ_OPEN311_API_KEY`` is registered (hashed) on first use."""
    configured = ctx.settings.open311_api_key
    if configured is not None and hmac.compare_digest(api_key.encode(), configured.get_secret_value().encode()):
        now = ctx.clock.now()
        await ctx.db.run(
            lambda s: auth.ensure_api_key(s, key=api_key, label="FQ_OPEN311_API_KEY", node_code=ctx.spec.code, now=now)
        )
    found: ApiKey | None = await ctx.db.run(lambda s: auth.find_api_key(s, api_key))
    return found


@router.get("/discovery.json", summary="服务发现：本中心的 Open311 端点")
async def discovery(request: Request, ctx: Context) -> dict[str, Any]:
    changeset = "2026-11-01T00:00:00+08:00"
    return {
        "changeset": changeset,
        "contact": f"{ctx.spec.name}（行政区划代码 {ctx.spec.code}）",
        "key_service": "api_key 由本中心管理员签发：fengqiao user key --code <行政区划代码> --label <用途>",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": str(request.base_url).rstrip("/") + "/open311/v2",
                "changeset": changeset,
                "type": "production",
                "formats": ["application/json"],
            }
        ],
    }


@router.get("/services.json", summary="服务列表：可受理的案件类别")
async def services(ctx: Context, jurisdiction_id: str = "") -> list[dict[str, Any]]:
    _jurisdiction(ctx, jurisdiction_id)
    return [
        {"service_code": c, "service_name": c, "description": f"{c}类矛盾纠纷、诉求或隐患", "metadata": True,
         "type": "realtime", "keywords": c, "group": GROUPS.get(c, "矛盾纠纷")}
        for c in ctx.settings.categories
    ]  # fmt: skip


@router.get("/services/{service_code}.json", summary="服务定义：提交时可填写的属性")
async def service_definition(service_code: str, ctx: Context, jurisdiction_id: str = "") -> dict[str, Any]:
    _jurisdiction(ctx, jurisdiction_id)
    if service_code not in ctx.settings.categories:
        raise Open311Error(404, f"没有服务 {service_code}，请先查询 services.json")
    return definition(service_code)


@router.post("/requests.json", summary="提交诉求（需 api_key）：经受理成为案件，返回受理编号")
async def create_request(
    ctx: Context,
    api: Services,
    api_key: Text = "",
    service_code: Text = "",
    jurisdiction_id: Text = "",
    lat: Text = "",
    long: Text = "",
    address_string: Text = "",
    description: Text = "",
    first_name: Text = "",
    last_name: Text = "",
    phone: Text = "",
    email: Text = "",
    device_id: Text = "",
    account_id: Text = "",
    urgency: Annotated[str, Form(alias="attribute[urgency]", description="routine 一般，urgent 紧急")] = "",
    grid: Annotated[str, Form(alias="attribute[grid]", description="所在网格")] = "",
) -> list[dict[str, Any]]:
    key = await _api_key(ctx, api_key)
    if key is None:
        raise Open311Error(403, "api_key 无效或缺失")
    code = _jurisdiction(ctx, jurisdiction_id)
    if not code.startswith(key.node_code):
        raise Open311Error(403, f"此 api_key 只能提交 {key.node_code} 及其下级的诉求")
    if service_code not in ctx.settings.categories:
        raise Open311Error(400, f"service_code “{service_code}” 不是可受理的类别")
    if not description.strip():
        raise Open311Error(400, "description 不能为空：请描述诉求")
    if urgency not in ("", "routine", "urgent"):
        raise Open311Error(400, "attribute[urgency] 应为 routine 或 urgent")
    location = case_pb2.Location(address=address_string)
    if lat or long:
        try:
            location.latitude, location.longitude = float(lat), float(long)
        except ValueError as exc:
            raise Open311Error(400, "lat、long 应为十进制经纬度") from exc
    name = (last_name + first_name).strip()
    parties = [case_pb2.Party(name=name, phone=phone, role="反映人")] if name else []
    if phone and not name:
        raise Open311Error(400, "提供 phone 时请同时提供 first_name 或 last_name")
    urgent = urgency == "urgent"
    request = intake_pb2.SubmitCaseRequest(
        client_request_id=f"open311-{uuid.uuid4()}",
        division_code=code,
        grid=grid,
        channel=CHANNEL,
        category=service_code,
        response_class=case_pb2.RESPONSE_CLASS_URGENT if urgent else case_pb2.RESPONSE_CLASS_ROUTINE,
        parties=parties,
        location=location,
        description=description,
        reporter=f"Open311:{key.label}",
    )
    reply = await _rpc(api.intake.SubmitCase(request))
    notice = f"已受理，受理编号 {reply.case.receipt_no}；{'2 小时' if urgent else '24 小时'}内办理"
    return [{"service_request_id": reply.case.receipt_no, "service_notice": notice, "account_id": account_id or None}]


@router.get("/requests.json", summary="诉求列表（默认近 90 天，最多 1000 条；不含个人信息）")
async def list_requests(
    ctx: Context,
    api: Services,
    service_request_id: Annotated[str, Query(description="受理编号，多个用逗号分隔；给出时忽略其它条件")] = "",
    service_code: Annotated[str, Query(description="类别，多个用逗号分隔")] = "",
    start_date: Annotated[str, Query(description="受理时间起（W3C 格式）")] = "",
    end_date: Annotated[str, Query(description="受理时间止（W3C 格式）")] = "",
    status: Annotated[str, Query(description="open、closed，或逗号分隔两者")] = "",
    jurisdiction_id: str = "",
) -> list[dict[str, Any]]:
    within = _jurisdiction(ctx, jurisdiction_id)
    if service_request_id:
        ids = [i.strip() for i in service_request_id.split(",") if i.strip()][:MAX_RESULTS]
        return [await _one(ctx, api, i, within) for i in ids]
    statuses = {s.strip() for s in status.split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status 应为 open 或 closed")
    codes = {c.strip() for c in service_code.split(",") if c.strip()}
    now = ctx.clock.now()
    try:
        end = parse_time(end_date) if end_date else None
        start = parse_time(start_date) if start_date else None
        end = end or (start + MAX_RANGE if start else now)
        start = start or end - MAX_RANGE
    except (ValueError, OverflowError) as exc:
        raise Open311Error(400, "start_date、end_date 应为 W3C 时间，如 2026-11-22T08:00:00+08:00") from exc
    if end - start > MAX_RANGE or end < start or start.year < 2000 or end.year > 2999:
        raise Open311Error(400, "时间范围须在 2000–2999 年间、90 天以内，且起始不晚于截止")
    found: list[dict[str, Any]] = []
    token = ""
    for _ in range(40):  # at most 20,000 cases scanned
        request = intake_pb2.ListCasesRequest(origin_node=within, page=common_pb2.PageRequest(page_size=500))
        request.page.page_token = token
        request.received_from.FromDatetime(start)
        request.received_to.FromDatetime(end)
        reply = await _rpc(api.intake.ListCases(request))
        for case in reply.cases:
            item = as_request(case, ctx.topology)
            if (not codes or case.category in codes) and (not statuses or item["status"] in statuses):
                found.append(item)
        token = reply.page.next_page_token
        if not token or len(found) >= MAX_RESULTS:
            break
    return found[:MAX_RESULTS]


async def _one(ctx: Context, api: Services, key: str, within: str) -> dict[str, Any]:
    case = await _rpc(api.intake.GetCase(intake_pb2.GetCaseRequest(id=key)))
    if not case.origin_node.startswith(within):
        raise Open311Error(404, f"诉求 {key} 不存在或不在 {within} 辖区")
    return as_request(case, ctx.topology)


@router.get("/requests/{service_request_id}.json", summary="一条诉求（按受理编号）")
async def get_request(
    service_request_id: str, ctx: Context, api: Services, jurisdiction_id: str = ""
) -> list[dict[str, Any]]:
    return [await _one(ctx, api, service_request_id, _jurisdiction(ctx, jurisdiction_id))]
