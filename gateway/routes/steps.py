"""The closed-loop steps over HTTP: ``POST /api/v1/cases/{id}/{step}`` with the step's slip as JSON,
and attachments (``POST /api/v1/attachments``, ``GET /api/v1/attachments/{sha256}``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, UploadFile
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import Message

from fengqiao.errors import InvalidArgument, NotFound
from fengqiao.security.roles import STEP_PERMISSIONS
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, routing_pb2
from gateway.deps import Caller, ReadsCases, Services, UploadsAttachments, require, require_scope
from gateway.routes.cases import as_json

router = APIRouter(prefix="/api/v1")


@dataclasses.dataclass(frozen=True)
class Step:
    label: str
    method: str
    request: type[Message]
    payload: type[Message]


STEPS = {
    "triage": Step("分类研判", "Triage", intake_pb2.TriageRequest, pb.Triaged),
    "assign": Step("交办", "Assign", intake_pb2.AssignRequest, pb.Assigned),
    "acknowledge": Step("签收", "Acknowledge", intake_pb2.AcknowledgeRequest, pb.Acknowledged),
    "return": Step("退单", "Return", intake_pb2.ReturnRequest, pb.Returned),
    "extension": Step("延期申请", "RequestExtension", intake_pb2.RequestExtensionRequest, pb.ExtensionRequested),
    "extension-decision": Step("延期审批", "DecideExtension", intake_pb2.DecideExtensionRequest, pb.ExtensionDecided),
    "start": Step("处置", "Start", intake_pb2.StartRequest, pb.Started),
    "progress": Step("处置进展", "ReportProgress", intake_pb2.ReportProgressRequest, pb.Progress),
    "feedback": Step("反馈", "SubmitFeedback", intake_pb2.SubmitFeedbackRequest, pb.FeedbackGiven),
    "review": Step("审核", "Review", intake_pb2.ReviewRequest, pb.Reviewed),
    "close": Step("办结", "Close", intake_pb2.CloseRequest, pb.Closed),
    "follow-up": Step("回访", "FollowUp", intake_pb2.FollowUpRequest, pb.FollowedUp),
    "archive": Step("归档", "Archive", intake_pb2.ArchiveRequest, pb.Archived),
}


@dataclasses.dataclass(frozen=True)
class RoutingStep:
    """A step taken through the routing service: its request carries the fields itself."""

    label: str
    method: str
    request: type[Message]


ROUTING_STEPS = {
    "escalate": RoutingStep("上报", "Escalate", routing_pb2.EscalateRequest),
    "accept-escalation": RoutingStep("接收上报", "AcceptEscalation", routing_pb2.AcceptEscalationRequest),
    "refuse-escalation": RoutingStep("退回上报", "RefuseEscalation", routing_pb2.RefuseEscalationRequest),
    "dispatch": RoutingStep("按类别派单交办", "Dispatch", routing_pb2.DispatchRequest),
    "whistle": RoutingStep("中心吹哨", "Whistle", routing_pb2.WhistleRequest),
    "report": RoutingStep("部门报到", "ReportForDuty", routing_pb2.ReportForDutyRequest),
    "task-force": RoutingStep("成立攻坚专班", "FormTaskForce", routing_pb2.FormTaskForceRequest),
    "subtask-done": RoutingStep("专班子任务完成", "CompleteSubTask", routing_pb2.CompleteSubTaskRequest),
}
_STEP_DOC = "；".join(
    [f"{name}（{step.label}）" for name, step in STEPS.items()]
    + [f"{name}（{step.label}）" for name, step in ROUTING_STEPS.items()]
)


@router.post(
    "/cases/{case_id}/{step}",
    summary="闭环步骤：" + _STEP_DOC,
    description="请求体为该步骤的单据（JSON，字段同 fengqiao.v1 中对应消息）；"
    "不合规的步骤返回 409 及原因，案件不变。可带 expected_version 防止并发覆盖。",
)
async def perform_step(
    case_id: str,
    step: str,
    who: Caller,
    api: Services,
    body: Annotated[dict[str, Any], Body()] = {},  # noqa: B006  (FastAPI copies defaults)
) -> dict[str, Any]:
    spec = STEPS.get(step)
    routed = ROUTING_STEPS.get(step)
    if spec is None and routed is None:
        raise NotFound(f"未知的步骤“{step}”，可用：{'、'.join([*STEPS, *ROUTING_STEPS])}")
    require(who, STEP_PERMISSIONS[step])
    case = await api.intake.GetCase(intake_pb2.GetCaseRequest(id=case_id))
    require_scope(who, case.escalation_to if step.endswith("-escalation") and case.escalation_to else case.holder_node)
    if routed is not None:
        request = _parse(dict(body, case_id=case.id, actor=who.username), routed.request())
        return as_json(await getattr(api.routing, routed.method)(request))
    assert spec is not None
    fields = dict(body)
    expected = int(fields.pop("expected_version", 0) or 0)
    payload = _parse(fields, spec.payload())
    request = spec.request(case_id=case.id, actor=who.username, expected_version=expected)
    request.step.CopyFrom(payload)  # type: ignore[attr-defined]
    updated = await getattr(api.intake, spec.method)(request)
    return as_json(updated)


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
