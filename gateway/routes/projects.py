"""四必评 over HTTP: ``GET /api/v1/projects`` (paginated, filterable), a project's detail, and the
operator actions — register, assess a gate, pass a gate, complete a measure, resolve a hazard,
link a dispute case. The actions are done at the center that registered the project."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field

from fengqiao.security.auth import Principal
from fengqiao.v1 import assessment_pb2 as pb
from gateway.deps import Context, ManagesProjects, Page, ReadsProjects, Services, require_scope, scope_of
from gateway.routes.cases import INT32, as_json, listed

router = APIRouter(prefix="/api/v1", tags=["四必评"])
STAGE_DOC = "环节：立项、决策、实施、验收"


class ProjectIn(BaseModel):
    """登记重大项目或重大决策。"""

    name: str = Field(description="项目名称")
    kind: str = Field(description="类别：征地、拆迁、产业园区、政策调整、其它")
    description: str = ""
    villages: list[str] = Field(description="受影响村（社区）的行政区划代码")
    people_affected: int = Field(ge=-INT32, le=INT32, description="涉及人数")


class DimensionsIn(BaseModel):
    legality: int = Field(ge=-INT32, le=INT32, description="合法性 0–100")
    reasonableness: int = Field(ge=-INT32, le=INT32, description="合理性 0–100")
    feasibility: int = Field(ge=-INT32, le=INT32, description="可行性 0–100")
    controllability: int = Field(ge=-INT32, le=INT32, description="可控性 0–100")


class SurveyIn(BaseModel):
    respondents: int = Field(ge=-INT32, le=INT32, description="受访人数")
    supporters: int = Field(ge=-INT32, le=INT32, description="支持人数")


class RiskPointIn(BaseModel):
    description: str
    likelihood: int = Field(ge=-INT32, le=INT32, description="可能性 1–5")
    impact: int = Field(ge=-INT32, le=INT32, description="影响程度 1–5")


class MeasureIn(BaseModel):
    description: str
    responsible_unit: str = Field(description="责任单位")
    deadline: dt.datetime = Field(description="完成时限")


class AssessmentIn(BaseModel):
    """一个环节的稳定风险评估：四项评分、民意调查、风险点、化解措施。"""

    stage: str = Field(description=STAGE_DOC)
    dimensions: DimensionsIn
    survey: SurveyIn
    risk_points: list[RiskPointIn] = []
    measures: list[MeasureIn] = []
    assessor: str = Field("", description="评估主体")
    summary: str = ""


class StageIn(BaseModel):
    stage: str = Field(description=STAGE_DOC)


class NoteIn(BaseModel):
    note: str = ""


class ResolutionIn(BaseModel):
    resolution: str = Field(description="隐患如何化解")


class CaseLinkIn(BaseModel):
    case_id: str = Field(description="由项目引发的矛盾纠纷案件编号")
    note: str = ""


def _assessment(body: AssessmentIn) -> pb.GateAssessment:
    measures = []
    for m in body.measures:
        deadline = Timestamp()
        deadline.FromDatetime(m.deadline if m.deadline.tzinfo else m.deadline.replace(tzinfo=dt.UTC))
        measures.append(pb.Measure(description=m.description, responsible_unit=m.responsible_unit, deadline=deadline))
    return pb.GateAssessment(
        dimensions=pb.Dimensions(**body.dimensions.model_dump()),
        survey=pb.Survey(**body.survey.model_dump()),
        risk_points=[pb.RiskPoint(**p.model_dump()) for p in body.risk_points],
        measures=measures,
        assessor=body.assessor,
        summary=body.summary,
    )


async def _held(project_id: str, who: Principal, api: Services) -> pb.Project:
    project: pb.Project = await api.assessment.GetProject(pb.GetProjectRequest(id=project_id))
    require_scope(who, project.node)
    return project


@router.get("/projects", summary="四必评项目列表（分页、可筛选）")
async def list_projects(
    who: ReadsProjects,
    api: Services,
    ctx: Context,
    page: Page,
    node: Annotated[str, Query(description="登记中心及其下级的行政区划代码")] = "",
    status: Annotated[str, Query(description="active 推进中、suspended 高风险暂停、completed 四评完成")] = "",
    stage: Annotated[str, Query(description="当前环节：" + STAGE_DOC)] = "",
    kind: str = "",
    level: Annotated[str, Query(description="最新评估的风险等级：low、medium、high")] = "",
    with_cases: Annotated[bool, Query(description="只看已引发矛盾纠纷的项目")] = False,
) -> dict[str, Any]:
    within = scope_of(who, ctx, node)
    reply = await api.assessment.ListProjects(
        pb.ListProjectsRequest(
            within=within, status=status, stage=stage, kind=kind, level=level, with_cases=with_cases,
            page=page,
        )
    )  # fmt: skip
    return listed(reply.projects, reply.page)


@router.get("/projects/{project_id}", summary="四必评项目详情：各环节、隐患、化解措施、引发的纠纷")
async def get_project(project_id: str, who: ReadsProjects, api: Services) -> dict[str, Any]:
    return as_json(await _held(project_id, who, api))


@router.post("/projects", status_code=201, summary="登记重大项目或重大决策（乡镇、县级）")
async def register_project(body: ProjectIn, who: ManagesProjects, api: Services, ctx: Context) -> dict[str, Any]:
    require_scope(who, ctx.spec.code)
    project = await api.assessment.RegisterProject(pb.RegisterProjectRequest(**body.model_dump(), actor=who.username))
    return as_json(project)


@router.post("/projects/{project_id}/assess", summary="评估一个环节；高风险则项目暂停，直至重新评估")
async def assess_gate(project_id: str, body: AssessmentIn, who: ManagesProjects, api: Services) -> dict[str, Any]:
    await _held(project_id, who, api)
    request = pb.AssessGateRequest(
        project_id=project_id, stage=body.stage, assessment=_assessment(body), actor=who.username
    )
    return as_json(await api.assessment.AssessGate(request))


@router.post("/projects/{project_id}/pass", summary="通过当前环节（须已完成评估且非高风险，不能跳过）")
async def pass_gate(project_id: str, body: StageIn, who: ManagesProjects, api: Services) -> dict[str, Any]:
    await _held(project_id, who, api)
    request = pb.PassGateRequest(project_id=project_id, stage=body.stage, actor=who.username)
    return as_json(await api.assessment.PassGate(request))


@router.post("/projects/{project_id}/measures/{measure_id}/complete", summary="化解措施完成")
async def complete_measure(
    project_id: str, measure_id: str, body: NoteIn, who: ManagesProjects, api: Services
) -> dict[str, Any]:
    await _held(project_id, who, api)
    request = pb.CompleteMeasureRequest(
        project_id=project_id, measure_id=measure_id, note=body.note, actor=who.username
    )
    return as_json(await api.assessment.CompleteMeasure(request))


@router.post("/projects/{project_id}/hazards/{hazard_id}/resolve", summary="隐患销号")
async def resolve_hazard(
    project_id: str, hazard_id: str, body: ResolutionIn, who: ManagesProjects, api: Services
) -> dict[str, Any]:
    await _held(project_id, who, api)
    request = pb.ResolveHazardRequest(
        project_id=project_id, hazard_id=hazard_id, resolution=body.resolution, actor=who.username
    )
    return as_json(await api.assessment.ResolveHazard(request))


@router.post("/projects/{project_id}/cases", summary="关联由项目引发的矛盾纠纷案件")
async def link_case(project_id: str, body: CaseLinkIn, who: ManagesProjects, api: Services) -> dict[str, Any]:
    await _held(project_id, who, api)
    request = pb.LinkCaseRequest(project_id=project_id, case_id=body.case_id, note=body.note, actor=who.username)
    return as_json(await api.assessment.LinkCase(request))
