"""三联 joint cases and 联防 risk alerts over HTTP: ``GET /api/v1/joint-cases`` (paginated,
filterable by status), a joint case, its shared timeline, and the operator actions; the risk
alerts under ``/api/v1/risk-alerts`` (``/api/v1/alerts`` are the early-warning alerts).

Reads are made as the caller's own center, so a neighbouring town sees only the joint cases it
takes part in; actions are done as this center."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from fengqiao.v1 import routing_pb2 as pb
from gateway.deps import Context, Direction, ManagesJoint, Page, ReadsJoint, Services, WorksJoint, require_scope
from gateway.routes.cases import as_json, listed

router = APIRouter(prefix="/api/v1", tags=["三联"])
_STATUS = {
    "": pb.JOINT_CASE_STATUS_UNSPECIFIED,
    "open": pb.JOINT_CASE_STATUS_OPEN,
    "closed": pb.JOINT_CASE_STATUS_CLOSED,
    "declined": pb.JOINT_CASE_STATUS_DECLINED,
}


class JointCaseIn(BaseModel):
    """发起三联联合案件（本镇牵头）。"""

    title: str = Field(description="案件名称")
    category: str = Field("", description="类别，如 山林土地、婚姻家庭")
    description: str = ""
    case_id: str = Field("", description="本镇的原案件编号（可选）")
    invited: list[str] = Field(description="邀请的相邻乡镇行政区划代码")


class AnswerIn(BaseModel):
    accept: bool = Field(description="true 接受邀请，false 拒绝")
    reason: str = Field("", description="理由（拒绝时必填）")


class NoteIn(BaseModel):
    text: str = Field(description="工作记录")


class MemberIn(BaseModel):
    name: str = Field(description="姓名")
    unit: str = Field(description="所在单位：调解员、司法所、派出所……")
    role: str = Field("成员", description="专班职务")
    phone: str = ""


class TaskIn(BaseModel):
    node: str = Field("", description="承担任务的乡镇（留空为本镇）")
    title: str = Field(description="任务内容")
    deadline: dt.datetime = Field(description="办理时限")


class ResultIn(BaseModel):
    result: str = Field(description="办理结果")


class SignOffIn(BaseModel):
    comment: str = Field("", description="签字意见")


class RiskAlertIn(BaseModel):
    """向相邻乡镇发出联防预警。"""

    kind: Literal["boundary_dispute", "wanted_vehicle", "missing_person", "other"] = Field(
        description="boundary_dispute 边界矛盾苗头，wanted_vehicle 协查车辆，missing_person 走失人员，other 其它"
    )
    title: str
    body: str = ""
    level: Literal["low", "medium", "high"] = "medium"
    to_nodes: list[str] = Field(default_factory=list, description="通报的相邻乡镇（留空为全部相邻乡镇）")


class AckIn(BaseModel):
    note: str = Field("", description="确认意见")


@router.get("/joint-cases", summary="三联联合案件：本中心参与的（县级为全部）")
async def list_joint_cases(
    who: ReadsJoint,
    api: Services,
    ctx: Context,
    page: Page,
    status: Annotated[
        Literal["", "open", "closed", "declined"], Query(description="open、closed、declined 或留空")
    ] = "",
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.ListJointCasesRequest(
        viewer=who.node_code,
        status=_STATUS[status],
        page=page,
    )
    reply = await api.routing.ListJointCases(request)
    return listed(reply.joint_cases, reply.page)


@router.post("/joint-cases", status_code=201, summary="发起三联联合案件，邀请相邻乡镇")
async def open_joint_case(body: JointCaseIn, who: ManagesJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.OpenJointCaseRequest(actor=who.username, **body.model_dump())
    return as_json(await api.routing.OpenJointCase(request))


@router.get("/joint-cases/{joint_id}", summary="联合案件详情：参与乡镇、专班成员、任务、签字")
async def get_joint_case(joint_id: str, who: ReadsJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    return as_json(await api.routing.GetJointCase(pb.GetJointCaseRequest(id=joint_id, viewer=who.node_code)))


@router.get("/joint-cases/{joint_id}/timeline", summary="联合案件的共享时间线（各参与方与县级顺序一致）及其哈希")
async def get_joint_timeline(joint_id: str, who: ReadsJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    return as_json(await api.routing.GetJointTimeline(pb.GetJointCaseRequest(id=joint_id, viewer=who.node_code)))


@router.post("/joint-cases/{joint_id}/answer", summary="接受或拒绝联合案件邀请")
async def answer_invitation(
    joint_id: str, body: AnswerIn, who: ManagesJoint, api: Services, ctx: Context
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.AnswerJointInvitationRequest(id=joint_id, actor=who.username, accept=body.accept, reason=body.reason)
    return as_json(await api.routing.AnswerJointInvitation(request))


@router.post("/joint-cases/{joint_id}/notes", summary="在共享时间线上添加工作记录")
async def add_note(joint_id: str, body: NoteIn, who: WorksJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.AddJointNoteRequest(id=joint_id, actor=who.username, text=body.text)
    return as_json(await api.routing.AddJointNote(request))


@router.post("/joint-cases/{joint_id}/members", summary="为专班添加本镇成员")
async def add_member(joint_id: str, body: MemberIn, who: ManagesJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    member = pb.JointMember(node=ctx.spec.code, **body.model_dump())
    return as_json(
        await api.routing.AddJointMember(pb.AddJointMemberRequest(id=joint_id, actor=who.username, member=member))
    )


@router.post("/joint-cases/{joint_id}/tasks", summary="分派专班任务（牵头乡镇、县级或承担乡镇）")
async def add_task(joint_id: str, body: TaskIn, who: ManagesJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.AddJointTaskRequest(id=joint_id, actor=who.username, node=body.node, title=body.title)
    request.deadline.FromDatetime(body.deadline)
    return as_json(await api.routing.AddJointTask(request))


@router.post("/joint-cases/{joint_id}/tasks/{task_id}/complete", summary="完成本镇承担的专班任务")
async def complete_task(
    joint_id: str, task_id: str, body: ResultIn, who: WorksJoint, api: Services, ctx: Context
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.CompleteJointTaskRequest(id=joint_id, actor=who.username, task_id=task_id, result=body.result)
    return as_json(await api.routing.CompleteJointTask(request))


@router.post("/joint-cases/{joint_id}/sign-off", summary="本镇签字；全部参与乡镇签字后联合办结")
async def sign_off(joint_id: str, body: SignOffIn, who: ManagesJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.SignOffJointCaseRequest(id=joint_id, actor=who.username, comment=body.comment)
    return as_json(await api.routing.SignOffJointCase(request))


@router.get("/risk-alerts", summary="联防预警：in 收到的，out 发出的，留空为全部（县级为全县）")
async def list_risk_alerts(
    who: ReadsJoint,
    api: Services,
    ctx: Context,
    page: Page,
    direction: Direction = "",
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    reply = await api.routing.ListRiskAlerts(pb.ListRiskAlertsRequest(direction=direction, page=page))
    return listed(reply.alerts, reply.page)


@router.post("/risk-alerts", status_code=201, summary="向相邻乡镇发出联防预警（断网时暂存，恢复后送达）")
async def raise_risk_alert(body: RiskAlertIn, who: ManagesJoint, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.RaiseRiskAlertRequest(actor=who.username, **body.model_dump())
    return as_json(await api.routing.RaiseRiskAlert(request))


@router.post("/risk-alerts/{alert_id}/acknowledge", summary="确认收到相邻乡镇的联防预警")
async def acknowledge_risk_alert(
    alert_id: str, body: AckIn, who: ManagesJoint, api: Services, ctx: Context
) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    request = pb.AcknowledgeRiskAlertRequest(id=alert_id, actor=who.username, note=body.note)
    return as_json(await api.routing.AcknowledgeRiskAlert(request))
