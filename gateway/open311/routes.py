"""Open311 GeoReport v2 under ``/open311/v2/`` (http://wiki.open311.org/GeoReport_v2), every
method in XML (the spec's required format) and JSON: ``/services.xml``, ``/services.json``, ….

Services are the county's case categories (the node setting ``FQ_CATEGORIES``); a request
becomes a case through intake (channel 12345转办, the Chinese 311); ``jurisdiction_id`` is a
division code at or below this node. Reads are public and carry no personal data (parties'
names, ID numbers and phones are masked in the description, the address is the village or town,
coordinates are rounded to about 1 km, the photo behind ``media_url`` is a thumbnail without
metadata). ``GET requests`` also takes the paging extension (``page``, ``page_size``) and
``updated_after``/``updated_before``. Errors follow the spec: ``[{"code", "description"}]`` or
``<errors><error>…``, with a Chinese description.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import uuid
from typing import Annotated, Any
from urllib.parse import quote

import grpc
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from fengqiao.errors import InvalidArgument
from fengqiao.security import auth
from fengqiao.security.records import ApiKey
from fengqiao.v1 import case_pb2, common_pb2, intake_pb2
from gateway.deps import Context, Services
from gateway.open311 import media, xml
from gateway.open311.format import GROUPS, as_request, definition, parse_time

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
CHANNEL = "12345转办"
MAX_RESULTS = 1000
MAX_RANGE = dt.timedelta(days=90)
MAX_SCANNED = 20_000  # cases read for one answer, at most
PAGE_SIZE = 100  # the paging extension's default
FORMATS = ("json", "xml")
Text = Annotated[str, Form()]
BOTH: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, xml.MEDIA_TYPE: {}}, "description": "JSON 或 XML"}
}


class Open311Error(Exception):
    """An error answered in the spec's format."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def install(app: FastAPI) -> None:
    """Answer Open311 errors as ``[{"code", "description"}]``, or ``<errors>`` under ``….xml``."""

    @app.exception_handler(Open311Error)
    async def _error(request: Request, exc: Open311Error) -> Response:
        body = [{"code": exc.status, "description": exc.description}]
        if request.url.path.endswith(".xml"):
            return xml.response("errors", body, status_code=exc.status)
        return JSONResponse(body, status_code=exc.status)


def _answer(format: str, root: str, body: Any) -> Response:
    """``body`` as JSON, or as the XML document ``<root>``."""
    if format == "xml":
        return xml.response(root, body)
    return JSONResponse(body)


def _format(format: str) -> str:
    if format not in FORMATS:
        raise Open311Error(404, f"不支持的格式 .{format}：请用 .xml 或 .json")
    return format


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


@router.get("/discovery.{format}", summary="服务发现：本中心的 Open311 端点（.xml 或 .json）", responses=BOTH)
async def discovery(format: str, request: Request, ctx: Context) -> Response:
    changeset = "2026-11-01T00:00:00+08:00"
    body = {
        "changeset": changeset,
        "contact": f"{ctx.spec.name}（行政区划代码 {ctx.spec.code}）",
        "key_service": "api_key 由本中心管理员签发：fengqiao user key --code <行政区划代码> --label <用途>",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": str(request.base_url).rstrip("/") + "/open311/v2",
                "changeset": changeset,
                "type": "production",
                "formats": [xml.MEDIA_TYPE.split(";")[0], "application/json"],
            }
        ],
    }
    return _answer(_format(format), "discovery", body)


@router.get("/services.{format}", summary="服务列表：可受理的案件类别", responses=BOTH)
async def services(format: str, ctx: Context, jurisdiction_id: str = "") -> Response:
    _format(format)
    _jurisdiction(ctx, jurisdiction_id)
    return _answer(format, "services", [
        {"service_code": c, "service_name": c, "description": f"{c}类矛盾纠纷、诉求或隐患", "metadata": True,
         "type": "realtime", "keywords": c, "group": GROUPS.get(c, "矛盾纠纷")}
        for c in ctx.settings.categories
    ])  # fmt: skip


@router.get("/services/{service_code}.{format}", summary="服务定义：提交时可填写的属性", responses=BOTH)
async def service_definition(service_code: str, format: str, ctx: Context, jurisdiction_id: str = "") -> Response:
    _format(format)
    _jurisdiction(ctx, jurisdiction_id)
    if service_code not in ctx.settings.categories:
        raise Open311Error(404, f"没有服务 {service_code}，请先查询 services.{format}")
    return _answer(format, "service_definition", definition(service_code))


@router.post("/requests.{format}", summary="提交诉求（需 api_key）：经受理成为案件，返回受理编号", responses=BOTH)
async def create_request(
    format: str,
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
) -> Response:
    _format(format)
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
    created = {"service_request_id": reply.case.receipt_no, "service_notice": notice, "account_id": account_id or None}
    return _answer(format, "service_requests", [created])


@router.get(
    "/requests.{format}",
    summary="诉求列表（默认近 90 天、最多 1000 条；可分页 page/page_size；不含个人信息）",
    responses=BOTH,
)
async def list_requests(
    format: str,
    request: Request,
    ctx: Context,
    api: Services,
    service_request_id: Annotated[str, Query(description="受理编号，多个用逗号分隔；给出时忽略其它条件")] = "",
    service_code: Annotated[str, Query(description="类别，多个用逗号分隔")] = "",
    start_date: Annotated[str, Query(description="受理时间起（W3C 格式）")] = "",
    end_date: Annotated[str, Query(description="受理时间止（W3C 格式）")] = "",
    status: Annotated[str, Query(description="open、closed，或逗号分隔两者")] = "",
    updated_after: Annotated[str, Query(description="最后更新时间不早于（W3C 格式）")] = "",
    updated_before: Annotated[str, Query(description="最后更新时间不晚于（W3C 格式）")] = "",
    page: Annotated[str, Query(description="页码，从 1 开始（分页扩展）")] = "",
    page_size: Annotated[str, Query(description=f"每页条数，1–{MAX_RESULTS}，默认 {PAGE_SIZE}（分页扩展）")] = "",
    jurisdiction_id: str = "",
) -> Response:
    _format(format)
    within = _jurisdiction(ctx, jurisdiction_id)
    if service_request_id:
        ids = [i.strip() for i in service_request_id.split(",") if i.strip()][:MAX_RESULTS]
        cases = [await _one(ctx, api, i, within) for i in ids]
        return _answer(format, "service_requests", [_with_media(request, c, ctx) for c in cases])
    statuses = {s.strip() for s in status.split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status 应为 open 或 closed")
    codes = {c.strip() for c in service_code.split(",") if c.strip()}
    received = _received_range(ctx, start_date, end_date, any_update=bool(updated_after or updated_before))
    updated = (_time("updated_after", updated_after), _time("updated_before", updated_before))
    number, size = _page(page, page_size)

    def wanted(case: case_pb2.Case, item: dict[str, Any]) -> bool:
        if (codes and case.category not in codes) or (statuses and item["status"] not in statuses):
            return False
        at = case.updated_at.ToDatetime(tzinfo=dt.UTC).replace(microsecond=0)  # as updated_datetime shows it
        return (updated[0] is None or at >= updated[0]) and (updated[1] is None or at <= updated[1])

    found: list[dict[str, Any]] = []
    token = ""
    for _ in range(MAX_SCANNED // 500):
        listing = intake_pb2.ListCasesRequest(origin_node=within, page=common_pb2.PageRequest(page_size=500))
        listing.page.page_token = token
        if received is not None:
            listing.received_from.FromDatetime(received[0])
            listing.received_to.FromDatetime(received[1])
        reply = await _rpc(api.intake.ListCases(listing))
        for case in reply.cases:
            item = as_request(case, ctx.topology)
            if wanted(case, item):
                found.append(_with_media(request, case, ctx, item))
        token = reply.page.next_page_token
        if not token or len(found) >= number * size:
            break
    return _answer(format, "service_requests", found[(number - 1) * size : number * size])


def _time(name: str, text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = parse_time(text)
    except (ValueError, OverflowError) as exc:
        raise Open311Error(400, f"{name} 应为 W3C 时间，如 2026-11-22T08:00:00+08:00") from exc
    if not 2000 <= moment.year <= 2999:
        raise Open311Error(400, f"{name} 须在 2000–2999 年间")
    return moment


def _received_range(
    ctx: Context, start_date: str, end_date: str, *, any_update: bool
) -> tuple[dt.datetime, dt.datetime] | None:
    """The spec's window on ``requested_datetime``: at most 90 days, the latest by default —
    none when only the update time is asked about (``updated_after``/``updated_before``)."""
    if any_update and not start_date and not end_date:
        return None
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
    return start, end


def _page(page: str, page_size: str) -> tuple[int, int]:
    """The page number and size; without either, the spec's one answer of up to 1000."""
    if not page and not page_size:
        return 1, MAX_RESULTS
    try:
        number = int(page) if page else 1
        size = int(page_size) if page_size else PAGE_SIZE
    except ValueError as exc:
        raise Open311Error(400, "page、page_size 应为正整数") from exc
    if number < 1 or not 1 <= size <= MAX_RESULTS:
        raise Open311Error(400, f"page 从 1 开始，page_size 应在 1–{MAX_RESULTS} 之间")
    if number * size > MAX_SCANNED:
        raise Open311Error(400, f"分页过深：page × page_size 不能超过 {MAX_SCANNED}，请用时间范围缩小查询")
    return number, size


def _with_media(
    request: Request, case: case_pb2.Case, ctx: Context, item: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The request, with ``media_url`` at the case's public thumbnail when it has a photo."""
    item = item if item is not None else as_request(case, ctx.topology)
    if media.photos(case):
        base = str(request.base_url).rstrip("/")
        item["media_url"] = f"{base}/open311/v2/media/{quote(case.receipt_no)}.jpg"
    return item


async def _one(ctx: Context, api: Services, key: str, within: str) -> case_pb2.Case:
    case: case_pb2.Case = await _rpc(api.intake.GetCase(intake_pb2.GetCaseRequest(id=key)))
    if not case.origin_node.startswith(within):
        raise Open311Error(404, f"诉求 {key} 不存在或不在 {within} 辖区")
    return case


@router.get("/requests/{service_request_id}.{format}", summary="一条诉求（按受理编号）", responses=BOTH)
async def get_request(
    service_request_id: str, format: str, request: Request, ctx: Context, api: Services, jurisdiction_id: str = ""
) -> Response:
    _format(format)
    case = await _one(ctx, api, service_request_id, _jurisdiction(ctx, jurisdiction_id))
    return _answer(format, "service_requests", [_with_media(request, case, ctx)])


@router.get(
    "/media/{service_request_id}.jpg",
    summary="诉求的公开照片：首张照片的缩略图，不含拍摄信息（EXIF 等）",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG"}},
)
async def request_photo(service_request_id: str, ctx: Context, api: Services) -> Response:
    case = await _one(ctx, api, service_request_id, ctx.spec.code)
    for sha256 in media.photos(case):
        stored = await _rpc(api.intake.GetAttachment(intake_pb2.GetAttachmentRequest(sha256=sha256)))
        if stored.ref.content_type in media.IMAGE_TYPES:
            try:
                picture = await asyncio.to_thread(media.thumbnail, stored.content)
            except InvalidArgument as exc:
                raise Open311Error(404, f"诉求 {service_request_id} 的照片无法显示：{exc.message}") from exc
            return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})
    raise Open311Error(404, f"诉求 {service_request_id} 没有照片，或照片不在本中心")
