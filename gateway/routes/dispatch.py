"""A center's departments and its downward commands over HTTP (the case steps of dispatch —
dispatch, whistle, report, task-force, subtask-done — are closed-loop steps, in ``steps.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fengqiao.v1 import routing_pb2
from gateway.deps import Context, Direction, Directs, Page, ReadsDepartments, Services, require_scope
from gateway.routes.cases import as_json, listed

router = APIRouter(prefix="/api/v1")


@router.get("/departments", summary="本中心的部门（常驻、轮驻、随驻）；给出类别时只列该类案件涉及的部门，承办部门在前")
async def list_departments(who: ReadsDepartments, api: Services, ctx: Context, category: str = "") -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    reply = await api.routing.ListDepartments(routing_pb2.ListDepartmentsRequest(category=category))
    return {"items": [as_json(d) for d in reply.departments]}


class NewDirective(BaseModel):
    to_node: str = Field(description="受令中心的行政区划代码（本中心以下）")
    kind: Literal["directive", "assignment"] = Field("directive", description="directive 工作指令，assignment 交办事项")
    title: str = Field(description="标题")
    body: str = Field("", description="内容")
    case_id: str = Field("", description="涉及的案件（可选）")
    deadline: dt.datetime | None = Field(None, description="办理时限（可选）")


class DirectiveAnswer(BaseModel):
    text: str = Field("", description="签收意见，或办结时的办理结果（必填）")


@router.get("/directives", summary="指令与交办事项：in 收到的，out 下达的，留空为全部")
async def list_directives(
    who: Directs,
    api: Services,
    ctx: Context,
    page: Page,
    direction: Direction = "",
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    reply = await api.routing.ListDirectives(routing_pb2.ListDirectivesRequest(direction=direction, page=page))
    return listed(reply.directives, reply.page)


@router.post("/directives", status_code=201, summary="向下级中心下达指令或交办事项（断网时暂存，恢复后送达）")
async def send_directive(order: NewDirective, who: Directs, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = routing_pb2.SendDirectiveRequest(
        to_node=order.to_node,
        actor=who.username,
        kind=order.kind,
        title=order.title,
        body=order.body,
        case_id=order.case_id,
    )
    if order.deadline is not None:
        request.deadline.FromDatetime(order.deadline)
    return as_json(await api.routing.SendDirective(request))


@router.post("/directives/{directive_id}/{action}", summary="签收（acknowledge）或办结（complete）收到的指令")
async def answer_directive(
    directive_id: str,
    action: Literal["acknowledge", "complete"],
    answer: DirectiveAnswer,
    who: Directs,
    api: Services,
    ctx: Context,
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = routing_pb2.DirectiveActionRequest(id=directive_id, actor=who.username, text=answer.text)
    method = api.routing.AcknowledgeDirective if action == "acknowledge" else api.routing.CompleteDirective
    return as_json(await method(request))
