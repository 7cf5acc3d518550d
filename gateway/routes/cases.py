"""The cases part of the JSON API (docs/ARCHITECTURE.md, *Public contracts*)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.security import OAuth2PasswordRequestForm
from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel, Field

from fengqiao.errors import InvalidArgument
from fengqiao.security import audit, auth, departments
from fengqiao.security.privacy import mask_case, mask_event
from fengqiao.security.roles import Permission, allows
from fengqiao.service import NodeContext
from fengqiao.v1 import case_pb2, common_pb2, federation_pb2, intake_pb2
from gateway.deps import (
    Caller,
    Context,
    Page,
    ReadsCases,
    ReadsFigures,
    Services,
    Stubs,
    SubmitsCases,
    require_scope,
    scope_of,
)

router = APIRouter(prefix="/api/v1")

_CLASSES = {
    "routine": case_pb2.RESPONSE_CLASS_ROUTINE,
    "urgent": case_pb2.RESPONSE_CLASS_URGENT,
    "task_force": case_pb2.RESPONSE_CLASS_TASK_FORCE,
}


INT32 = 2**31 - 1  # protobuf int32 bounds: larger numbers are refused at the edge, not in the stub


def as_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def listed(items: Iterable[Message], page: common_pb2.PageInfo) -> dict[str, Any]:
    """A page of a list, as every list of the API answers it."""
    return {"items": [as_json(m) for m in items], "next_page_token": page.next_page_token}


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/auth/token", response_model=Token, summary="登录，获取访问令牌（OAuth2 密码模式）")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], ctx: Context) -> Token:
    account = await ctx.db.read(lambda s: auth.load_account(s, form.username))
    # Argon2id costs tens of milliseconds of CPU: checked on a worker thread, not the database's.
    who, rehashed = await asyncio.to_thread(auth.check_login, account, form.password)
    if account is not None and rehashed is not None:  # an old-scheme hash, replaced now that it matched
        old = account.password_hash
        await ctx.db.write(lambda s: auth.store_rehash(s, username=account.username, old=old, new=rehashed))
    ttl = dt.timedelta(minutes=ctx.settings.token_ttl_minutes)
    secret = ctx.settings.token_secret.get_secret_value()
    token = auth.issue_token(who, secret=secret, ttl=ttl, now=ctx.clock.now(), issuer=ctx.spec.code)
    return Token(access_token=token, expires_in=int(ttl.total_seconds()))


@router.get(
    "/nodes", summary="本节点及下级节点：代码、层级、名称、上级、地址、上行链路状态与积压、监控指标地址（metrics_url）"
)
async def list_nodes(
    who: ReadsFigures,
    api: Services,
    ctx: Context,
    tier: Annotated[int | None, Query(description="1 县, 2 乡镇, 3 村")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    reply = await api.federation.ListNodes(federation_pb2.ListNodesRequest())
    nodes = [n for n in reply.nodes if n.code.startswith(who.node_code) and (tier is None or n.tier == tier)]
    return {
        "total": len(nodes),
        "items": [{**as_json(n), "metrics_url": metrics_url(ctx, n.code)} for n in nodes[offset : offset + limit]],
    }


def metrics_url(ctx: NodeContext, code: str) -> str | None:
    """Where Prometheus scrapes a node: this process's own endpoint, else the topology's port."""
    metrics = ctx.metrics
    if code == ctx.spec.code and metrics is not None and metrics.port:
        host = ctx.spec.host if metrics.host in ("", "0.0.0.0", "::") else metrics.host  # bound to all: the node's
        return f"http://{host}:{metrics.port}/metrics"
    return ctx.topology.node(code).metrics_url if ctx.topology.knows(code) else None


@router.get(
    "/vocabulary",
    summary="本节点受理用语：案件类别、来源渠道（FQ_CATEGORIES、FQ_CHANNELS），及本中心、上级与相邻乡镇的名称",
)
async def vocabulary(who: Caller, ctx: Context) -> dict[str, Any]:
    words = ctx.settings.vocabulary()
    here = ctx.topology.node(ctx.spec.code)
    near = [here, *ctx.topology.ancestors(here.code)]
    near += [ctx.topology.node(c) for c in here.neighbours if ctx.topology.knows(c)]
    return {
        "categories": list(words.categories),
        "channels": list(words.channels),
        "centers": [{"code": n.code, "name": n.name, "tier": int(n.tier)} for n in near],
    }


class PartyIn(BaseModel):
    name: str = Field(description="姓名")
    id_number: str = Field("", description="身份证号")
    phone: str = Field("", description="电话")
    role: str = Field("", description="申请人、被申请人、反映人……")


class LocationIn(BaseModel):
    address: str = ""
    latitude: float = 0.0
    longitude: float = 0.0


class CaseIn(BaseModel):
    """受理一件诉求、纠纷或隐患。"""

    client_request_id: str = Field(description="客户端请求编号（重试时保持不变）")
    division_code: str = Field("", description="事发村（社区）或乡镇的行政区划代码")
    grid: str = ""
    channel: str = Field(description="来源渠道")
    category: str = Field(description="案件类别")
    response_class: Literal["routine", "urgent", "task_force"] = "routine"
    parties: list[PartyIn] = []
    location: LocationIn = LocationIn()
    description: str = Field(description="情况描述")
    reporter: str = ""


@router.post("/cases", status_code=201, summary="受理案件（答复中的案件与列表一样打码）")
async def submit_case(body: CaseIn, who: SubmitsCases, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    fields = body.model_dump()
    fields["response_class"] = _CLASSES[body.response_class]
    fields["reporter"] = body.reporter or who.username
    request = json_format.ParseDict(fields, intake_pb2.SubmitCaseRequest())
    reply = as_json(await api.intake.SubmitCase(request))
    # The answer confirms the intake, masked like a step's: a retried client_request_id answers
    # the case stored under it, which must not be a way to read a case's parties unaudited.
    return {**reply, "case": mask_case(reply["case"])}


@router.get(
    "/cases",
    summary="案件列表（分页、可筛选）：地址只到村（社区），当事人与文字中的身份证号、电话打码；部门/调解员只见本部门承办的案件",
)
async def list_cases(
    who: ReadsCases,
    api: Services,
    ctx: Context,
    page: Page,
    origin_node: str = "",
    category: str = "",
    status: Annotated[int, Query(ge=0, le=INT32, description="fengqiao.v1.CaseStatus 数值")] = 0,
    grid: str = "",
    channel: str = "",
    response_class: Annotated[str, Query(description="routine、urgent 或 task_force")] = "",
    overdue: Annotated[bool, Query(description="只看已超时未办结的案件")] = False,
    holder_node: str = "",
    received_from: Annotated[dt.datetime | None, Query(description="受理时间起（含）")] = None,
    received_to: Annotated[dt.datetime | None, Query(description="受理时间止（不含）")] = None,
) -> dict[str, Any]:
    within = scope_of(who, ctx, origin_node)
    if response_class and response_class not in _CLASSES:
        raise InvalidArgument("response_class", "应为 routine、urgent 或 task_force")
    request = intake_pb2.ListCasesRequest(
        origin_node=within,
        category=category,
        status=case_pb2.CaseStatus.ValueType(status),
        grid=grid,
        channel=channel,
        response_class=_CLASSES.get(response_class, case_pb2.RESPONSE_CLASS_UNSPECIFIED),
        overdue_only=overdue,
        holder_node=holder_node,
        page=page,
    )
    if received_from is not None:
        request.received_from.FromDatetime(received_from)
    if received_to is not None:
        request.received_to.FromDatetime(received_to)
    if departments.scoped(who):
        cases, token = await _department_page(api, request, departments.require_department(who), page.page_size)
    else:
        reply = await api.intake.ListCases(request)
        cases, token = list(reply.cases), reply.page.next_page_token
    items = await shown(ctx, who, cases, view="list", full=Permission.PII_IN_LISTS)
    return {"items": items, "next_page_token": token}


_SCAN_CALLS = 20  # a department's page reads at most this many pages of the center's list


async def _department_page(
    api: Stubs, request: intake_pb2.ListCasesRequest, department: str, page_size: int
) -> tuple[list[case_pb2.Case], str]:
    """A page of the cases ``department`` works on, read through the center's list: each read asks
    for no more cases than the page still lacks, so the token answered resumes right after the
    last case shown. A page may hold fewer cases than asked for; the list goes on while it has
    a ``next_page_token``."""
    found: list[case_pb2.Case] = []
    token = request.page.page_token
    for _ in range(_SCAN_CALLS):
        request.page.CopyFrom(common_pb2.PageRequest(page_size=page_size - len(found), page_token=token))
        reply = await api.intake.ListCases(request)
        found += [c for c in reply.cases if departments.works_on(c, department)]
        token = reply.page.next_page_token
        if not token or len(found) >= page_size:
            break
    return found, token


async def audit_personal_read(ctx: NodeContext, who: auth.Principal, cases: Sequence[case_pb2.Case], what: str) -> None:
    """Every read of cases' personal data in full is in the audit trail: one ``pii.read`` per case
    that holds any, naming the operator and the view (case, timeline, list)."""
    now = ctx.clock.now()
    entries = [
        audit.Entry(now, ctx.spec.code, who.username, "pii.read", case.id, {"view": what})
        for case in cases
        if case.parties or case.location.address
    ]
    if entries:
        await ctx.db.write(lambda s: audit.record(s, entries))


async def shown(
    ctx: NodeContext, who: auth.Principal, cases: Sequence[case_pb2.Case], *, view: str, full: Permission
) -> list[dict[str, Any]]:
    """The cases as the caller may see them: in full, audited, when its role holds ``full``;
    else masked (``fengqiao.security.privacy.mask_case``)."""
    items = [as_json(c) for c in cases]
    if not allows(who.role, full):
        return [mask_case(c) for c in items]
    await audit_personal_read(ctx, who, cases, view)
    return items


async def visible_case(api: Stubs, who: auth.Principal, case_id: str) -> case_pb2.Case:
    """The case, refused unless it lies in the caller's scope and, for a 部门/调解员, its department
    works on it."""
    case = await api.intake.GetCase(intake_pb2.GetCaseRequest(id=case_id))
    require_scope(who, case.origin_node)
    departments.check_read(who, case)
    return case


@router.get("/cases/{case_id}", summary="案件详情（可见当事人信息的角色查看时记入审计日志）")
async def get_case(case_id: str, who: ReadsCases, api: Services, ctx: Context) -> dict[str, Any]:
    case = await visible_case(api, who, case_id)
    return (await shown(ctx, who, [case], view="case", full=Permission.PII_READ))[0]


@router.get("/cases/{case_id}/events", summary="案件时间线（事件）")
async def case_events(case_id: str, who: ReadsCases, api: Services, ctx: Context) -> dict[str, Any]:
    case = await visible_case(api, who, case_id)
    reply = await api.intake.ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=case.id))
    items = [as_json(e) for e in reply.events]
    if not allows(who.role, Permission.PII_READ):
        names = [p.name for p in case.parties]
        return {"items": [mask_event(e, names) for e in items]}
    await audit_personal_read(ctx, who, [case], "timeline")
    return {"items": items}
