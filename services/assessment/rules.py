"""The four gates of 四必评 as a pure state machine: what may be done to a project, and the fold
of its events into its current state. No I/O.

A project passes 立项, 决策, 实施, 验收 in that order. A gate needs a completed assessment
before it passes; a high-risk assessment blocks it and suspends the project until the gate is
reassessed at medium or low. Only the registering center advances a project.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from fengqiao.divisions import Tier, is_within, tier_of
from fengqiao.errors import IllegalTransition, InvalidArgument, NotFound
from fengqiao.v1 import assessment_pb2 as pb
from services.assessment.policy import Verdict

STAGES = ("立项", "决策", "实施", "验收")
KINDS = ("征地", "拆迁", "产业园区", "政策调整", "其它")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,80}$")
_PROJECT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:fengqiao:assessment:project")


def project_id_for(node_code: str, client_request_id: str) -> str:
    """The id of the project a center registers for a client request id: the same for a retry,
    so a retried registration finds the first one (and the primary key refuses a second)."""
    return str(uuid.uuid5(_PROJECT_IDS, f"{node_code}/{client_request_id}"))


def validate_registration(request: pb.RegisterProjectRequest, *, node_code: str) -> None:
    """A project is registered at a town or the county, for villages of its own area."""
    if tier_of(node_code) is Tier.VILLAGE:
        raise IllegalTransition("重大项目（四必评）须在乡镇或县级综治中心登记，村级综治站不能登记")
    if request.client_request_id and not _REQUEST_ID.match(request.client_request_id):
        raise InvalidArgument("client_request_id", "请求编号须为 8–80 位字母、数字或 ._:-（可不填）")
    if not request.name.strip() or len(request.name) > 200:
        raise InvalidArgument("name", "须填写项目名称（200 字以内）")
    if request.kind not in KINDS:
        raise InvalidArgument("kind", f"项目类别须为 {'、'.join(KINDS)} 之一")
    if not request.villages:
        raise InvalidArgument("villages", "须列出受影响的村（社区）")
    for i, code in enumerate(request.villages):
        if tier_of(code, field=f"villages[{i}]") is not Tier.VILLAGE or not is_within(code, node_code):
            raise InvalidArgument(f"villages[{i}]", f"{code} 不是本中心辖区内的村（社区）")
    if request.people_affected < 1:
        raise InvalidArgument("people_affected", "须填写涉及人数（至少 1 人）")


def gate(project: pb.Project, stage: str) -> pb.Gate:
    """The gate of ``stage``, or ``InvalidArgument`` if there is no such stage."""
    for g in project.gates:
        if g.stage == stage:
            return g
    raise InvalidArgument("stage", f"环节须为 {'、'.join(STAGES)} 之一")


def check_holder(project: pb.Project, node_code: str) -> None:
    """Only the registering center may advance a project; the others keep copies."""
    if project.node != node_code:
        raise IllegalTransition(f"项目由 {project.node} 登记，只能由该中心办理")


def _check_current(project: pb.Project, stage: str, doing: str) -> pb.Gate:
    target = gate(project, stage)
    if project.status == "completed":
        raise IllegalTransition("项目已通过全部四个环节（立项、决策、实施、验收）")
    current = project.stage
    if STAGES.index(stage) > STAGES.index(current):
        raise IllegalTransition(f"不能跳过“{current}”环节：须先评估并通过{current}，才能{doing}“{stage}”")
    if STAGES.index(stage) < STAGES.index(current):
        raise IllegalTransition(f"“{stage}”环节已通过，不能再{doing}")
    return target


def check_assess(project: pb.Project, stage: str) -> None:
    """The current gate may be assessed, and reassessed until it passes."""
    _check_current(project, stage, "评估")


def check_pass(project: pb.Project, stage: str) -> None:
    """The current gate passes only with a completed assessment at medium or low risk."""
    target = _check_current(project, stage, "通过")
    if target.status == "pending":
        raise IllegalTransition(f"“{stage}”环节尚未完成稳定风险评估，不能通过")
    if target.status == "blocked":
        raise IllegalTransition(f"“{stage}”环节评估为高风险，项目已暂停：须落实化解措施并重新评估")


def prepare_assessment(
    project: pb.Project, stage: str, assessment: pb.GateAssessment, verdict: Verdict, new_id: Callable[[], str]
) -> pb.GateAssessment:
    """The assessment as it is recorded: level, reasons, and the ids of its hazards and measures.

    A risk point already tracked as an open hazard of the project (same description) stays
    that hazard, so a reassessment does not count it twice.
    """
    recorded = pb.GateAssessment()
    recorded.CopyFrom(assessment)
    recorded.level = verdict.level
    del recorded.reasons[:]
    recorded.reasons.extend(verdict.reasons)
    open_hazards = {h.description.strip(): h.id for h in project.hazards if not h.resolved}
    for point in recorded.risk_points:
        point.hazard_id = open_hazards.get(point.description.strip()) or new_id()
    for measure in recorded.measures:
        measure.id, measure.stage, measure.completed = new_id(), stage, False
    return recorded


def check_complete_measure(project: pb.Project, measure_id: str) -> None:
    measure = next((m for m in project.measures if m.id == measure_id), None)
    if measure is None:
        raise NotFound(f"项目中没有化解措施 {measure_id}")
    if measure.completed:
        raise IllegalTransition("该化解措施已完成")


def check_resolve_hazard(project: pb.Project, hazard_id: str, resolution: str) -> None:
    hazard = next((h for h in project.hazards if h.id == hazard_id), None)
    if hazard is None:
        raise NotFound(f"项目中没有隐患 {hazard_id}")
    if hazard.resolved:
        raise IllegalTransition("该隐患已销号")
    if not resolution.strip():
        raise InvalidArgument("resolution", "须说明隐患如何化解")


def check_link(project: pb.Project, case_id: str) -> None:
    if any(c.case_id == case_id for c in project.cases):
        raise IllegalTransition("该案件已关联到本项目")


def fold(project: pb.Project | None, event: pb.ProjectEvent) -> pb.Project:
    """The project after ``event`` (a new message; ``project`` is left as it was)."""
    kind = event.WhichOneof("payload")
    if kind == "registered":
        if project is not None:
            raise IllegalTransition(f"项目 {event.project_id} 已登记")
        r = event.registered
        folded = pb.Project(
            id=event.project_id, name=r.name, node=event.node, stage=STAGES[0], kind=r.kind,
            description=r.description, villages=r.villages, people_affected=r.people_affected,
            status="active", gates=[pb.Gate(stage=s, status="pending") for s in STAGES],
            registered_at=event.at, registered_by=event.actor,
        )  # fmt: skip
    elif project is None:
        raise NotFound(f"项目 {event.project_id} 尚未登记")
    else:
        folded = pb.Project()
        folded.CopyFrom(project)
        _apply(folded, event, kind)
    folded.version = event.seq
    folded.updated_at.CopyFrom(event.at)
    return folded


def _apply(project: pb.Project, event: pb.ProjectEvent, kind: str | None) -> None:
    if kind == "assessed":
        done = event.assessed
        target = gate(project, done.stage)
        target.assessments += 1
        target.latest.CopyFrom(done.assessment)
        target.level = done.assessment.level
        target.assessed_at.CopyFrom(event.at)
        target.status = "blocked" if target.level == "high" else "assessed"
        project.status = "suspended" if target.level == "high" else "active"
        known = {h.id for h in project.hazards}
        for point in done.assessment.risk_points:
            if point.hazard_id not in known:
                known.add(point.hazard_id)
                project.hazards.add(
                    id=point.hazard_id, stage=done.stage, description=point.description,
                    likelihood=point.likelihood, impact=point.impact, found_at=event.at,
                )  # fmt: skip
        project.measures.extend(done.assessment.measures)
    elif kind == "gate_passed":
        target = gate(project, event.gate_passed.stage)
        target.status = "passed"
        target.passed_at.CopyFrom(event.at)
        index = STAGES.index(target.stage)
        if index == len(STAGES) - 1:
            project.status = "completed"
        else:
            project.stage = STAGES[index + 1]
    elif kind == "measure_completed":
        for m in project.measures:
            if m.id == event.measure_completed.measure_id:
                m.completed, m.completed_by, m.note = True, event.actor, event.measure_completed.note
                m.completed_at.CopyFrom(event.at)
    elif kind == "hazard_resolved":
        for h in project.hazards:
            if h.id == event.hazard_resolved.hazard_id:
                h.resolved, h.resolved_by, h.resolution = True, event.actor, event.hazard_resolved.resolution
                h.resolved_at.CopyFrom(event.at)
    elif kind == "case_linked":
        project.cases.append(event.case_linked.link)
    else:
        raise InvalidArgument("payload", f"未知的项目事件类型 {kind}")
