"""The closed-loop steps over HTTP: ``POST /api/v1/cases/{id}/{step}`` with the step's slip as JSON,
and attachments (``POST /api/v1/attachments``, ``GET /api/v1/attachments/{sha256}``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, UploadFile
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import Message

from fengqiao.errors import InvalidArgument, NotFound
from fengqiao.security import departments
from fengqiao.security.privacy import mask_case
from fengqiao.security.roles import STEP_PERMISSIONS
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, routing_pb2
from gateway.deps import Caller, ReadsCases, Services, Stubs, UploadsAttachments, require, require_scope
from gateway.routes.cases import as_json

router = APIRouter(prefix="/api/v1")


@dataclasses.dataclass(frozen=True)
class Step:
    """A case step over HTTP: the service and method that take it, and its gRPC request.

    Every step's request carries the same envelope (``case_id``, ``actor``, ``expected_version``)
    and the step's slip: nested as ``step`` in Intake's requests, the remaining fields in Routing's.
    """

    label: str
    service: Literal["intake", "routing"]
    method: str
    request: type[Message]

    def call(self, api: Stubs, request: Message) -> Awaitable[pb.Case]:
        """The service's answer to ``request``: the case after the step."""
        method: Callable[[Message], Awaitable[pb.Case]] = getattr(getattr(api, self.service), self.method)
        return method(request)


STEPS = {
    "triage": Step("分类研判", "intake", "Triage", intake_pb2.TriageRequest),
    "assign": Step("交办", "intake", "Assign", intake_pb2.AssignRequest),
    "acknowledge": Step("签收", "intake", "Acknowledge", intake_pb2.AcknowledgeRequest),
    "return": Step("退单", "intake", "Return", intake_pb2.ReturnRequest),
    "extension": Step("延期申请", "intake", "RequestExtension", intake_pb2.RequestExtensionRequest),
    "extension-decision": Step("延期审批", "intake", "DecideExtension", intake_pb2.DecideExtensionRequest),
    "start": Step("处置", "intake", "Start", intake_pb2.StartRequest),
    "progress": Step("处置进展", "intake", "ReportProgress", intake_pb2.ReportProgressRequest),
    "feedback": Step("反馈", "intake", "SubmitFeedback", intake_pb2.SubmitFeedbackRequest),
    "review": Step("审核", "intake", "Review", intake_pb2.ReviewRequest),
    "close": Step("办结", "intake", "Close", intake_pb2.CloseRequest),
    "follow-up": Step("回访", "intake", "FollowUp", intake_pb2.FollowUpRequest),
    "archive": Step("归档", "intake", "Archive", intake_pb2.ArchiveRequest),
    "escalate": Step("上报", "routing", "Escalate", routing_pb2.EscalateRequest),
    "accept-escalation": Step("接收上报", "routing", "AcceptEscalation", routing_pb2.AcceptEscalationRequest),
    "refuse-escalation": Step("退回上报", "routing", "RefuseEscalation", routing_pb2.RefuseEscalationRequest),
    "dispatch": Step("按类别派单交办", "routing", "Dispatch", routing_pb2.DispatchRequest),
    "whistle": Step("中心吹哨", "routing", "Whistle", routing_pb2.WhistleRequest),
    "report": Step("部门报到", "routing", "ReportForDuty", routing_pb2.ReportForDutyRequest),
    "task-force": Step("成立攻坚专班", "routing", "FormTaskForce", routing_pb2.FormTaskForceRequest),
    "subtask-done": Step("专班子任务完成", "routing", "CompleteSubTask", routing_pb2.CompleteSubTaskRequest),
}
_STEP_DOC = "；".join(f"{name}（{step.label}）" for name, step in STEPS.items())
_FROM_CALLER = ("case_id", "actor")  # the path and the login name them, never the slip


def _request(spec: Step, *, case_id: str, actor: str, body: Mapping[str, Any]) -> Message:
    """The gRPC request for a step from its HTTP body: the slip's fields and, optionally,
    ``expected_version``; the case comes from the path and the actor from the login."""
    slip = {name: value for name, value in body.items() if name != "expected_version"}
    stray = [name for name in _FROM_CALLER if name in slip]
    if stray:
        raise InvalidArgument("body", f"单据格式错误：{'、'.join(stray)} 由路径和登录用户决定，不能写在单据中")
    nested = "step" in spec.request.DESCRIPTOR.fields_by_name
    fields = {"step": slip} if nested else slip
    envelope = {"case_id": case_id, "actor": actor, "expected_version": body.get("expected_version") or 0}
    return _parse({**fields, **envelope}, spec.request())


@router.post(
    "/cases/{case_id}/{step}",
    summary="闭环步骤：" + _STEP_DOC,
    description="请求体（JSON）为该步骤单据的字段，可另带 expected_version（所见的案件版本；不填或 0 为不核对）："
    "案件已被他人更新时返回 409 及原因，案件不变；不合规的步骤同样返回 409 及原因。"
    "单据字段见 fengqiao.v1：triage 至 archive 同对应的事件消息（如 Triaged），"
    "其余步骤同对应的请求消息（如 DispatchRequest）除去 case_id、actor、expected_version。",
)
async def perform_step(
    case_id: str,
    step: str,
    who: Caller,
    api: Services,
    body: Annotated[dict[str, Any], Body()] = {},  # noqa: B006  (FastAPI copies defaults)
) -> dict[str, Any]:
    spec = STEPS.get(step)
    if spec is None:
        raise NotFound(f"未知的步骤“{step}”，可用：{'、'.join(STEPS)}")
    require(who, STEP_PERMISSIONS[step])
    case = await api.intake.GetCase(intake_pb2.GetCaseRequest(id=case_id))
    require_scope(who, case.escalation_to if step.endswith("-escalation") and case.escalation_to else case.holder_node)
    departments.check_step(who, step, case, body)
    if step == "acknowledge" and departments.scoped(who) and not body.get("department"):
        body = {**body, "department": who.department}  # 签收 in the name of the caller's own department
    request = _request(spec, case_id=case.id, actor=who.username, body=body)
    # The answer confirms the step; the parties and address are read, audited, from the case's detail.
    return mask_case(as_json(await spec.call(api, request)))


def _parse(fields: dict[str, Any], into: Message) -> Message:
    try:
        return json_format.ParseDict(fields, into)
    except json_format.ParseError as exc:
        raise InvalidArgument("body", f"单据格式错误：{exc}") from exc


@router.post("/attachments", status_code=201, summary="上传附件（照片、签字材料），返回 sha256")
async def upload_attachment(
    who: UploadsAttachments,
    api: Services,
    file: Annotated[UploadFile, File(description="JPEG、PNG 或 PDF")],
    filename: Annotated[str, Form()] = "",
) -> dict[str, Any]:
    content = await file.read()
    reply = await api.intake.PutAttachment(
        intake_pb2.PutAttachmentRequest(
            content=content,
            content_type=file.content_type or "",
            filename=filename or file.filename or "",
        )
    )
    return as_json(reply)


@router.get("/attachments/{sha256}", summary="下载附件", response_class=Response)
async def download_attachment(sha256: str, who: ReadsCases, api: Services) -> Response:
    reply = await api.intake.GetAttachment(intake_pb2.GetAttachmentRequest(sha256=sha256))
    return Response(content=reply.content, media_type=reply.ref.content_type)
