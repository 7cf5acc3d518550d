"""The Assessment gRPC methods (四必评): register a project, assess and pass its gates, track
its measures and hazards, link the disputes it bred; read the projects of the subtree."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.divisions import is_within
from fengqiao.errors import IllegalTransition, InvalidArgument, NotFound
from fengqiao.grpcutil import grpc_method
from fengqiao.telemetry import current_headers
from fengqiao.v1 import assessment_pb2 as pb
from fengqiao.v1 import assessment_pb2_grpc, common_pb2
from services.assessment import policy, rules, store
from services.assessment.config import AssessmentSettings

Build = Callable[[Session, pb.Project], dict[str, object]]  # checks, then the event's payload by field


def _new_id() -> str:
    return str(uuid.uuid4())


class AssessmentHandlers(assessment_pb2_grpc.AssessmentServicer):
    """Advances the projects this node registered; answers for every project of its subtree."""

    def __init__(
        self,
        *,
        db: Database,
        node_code: str,
        clock: Clock,
        rule: policy.PolicyFile,
        settings: AssessmentSettings,
        on_commit: Callable[[], None],
    ) -> None:
        self._db = db
        self._node = node_code
        self._clock = clock
        self._rule = rule
        self._settings = settings
        self._on_commit = on_commit

    def _event(self, project_id: str, seq: int, actor: str, payload: dict[str, object]) -> pb.ProjectEvent:
        at = Timestamp()
        at.FromDatetime(self._clock.now())
        return pb.ProjectEvent(
            id=_new_id(), project_id=project_id, seq=seq, node=self._node, actor=actor or "operator", at=at,
            **payload,  # type: ignore[arg-type]
        )  # fmt: skip

    async def _advance(self, project_id: str, actor: str, build: Build) -> pb.Project:
        """Check and append one event to a project this node registered, in one transaction."""
        if not project_id:
            raise InvalidArgument("project_id", "须指明项目")
        headers = current_headers()

        def write(session: Session) -> pb.Project:
            project = store.get_project(session, project_id=project_id, for_update=True)
            rules.check_holder(project, self._node)
            event = self._event(project.id, project.version + 1, actor, build(session, project))
            return store.append(session, event=event, headers=headers, now=self._clock.now())

        try:
            project = await self._db.run(write)
        except IntegrityError as exc:  # a concurrent writer appended the same seq first
            raise IllegalTransition("项目已被他人同时更新，请刷新后重试") from exc
        self._on_commit()
        return project

    @grpc_method
    async def RegisterProject(
        self, request: pb.RegisterProjectRequest, context: grpc.aio.ServicerContext
    ) -> pb.Project:
        rules.validate_registration(request, node_code=self._node)
        registered = pb.ProjectRegistered(
            name=request.name.strip(), kind=request.kind, description=request.description,
            villages=request.villages, people_affected=request.people_affected,
        )  # fmt: skip
        rid = request.client_request_id
        project_id = rules.project_id_for(self._node, rid) if rid else _new_id()
        event = self._event(project_id, 1, request.actor, {"registered": registered})
        headers = current_headers()

        def write(session: Session) -> pb.Project:
            # A retried request id finds the project its first request registered.
            existing = store.load_project(session, project_id=project_id) if rid else None
            return existing or store.append(session, event=event, headers=headers, now=self._clock.now())

        try:
            project = await self._db.run(write)
        except IntegrityError:  # the same request id, registered concurrently: that one stands
            if not rid:
                raise
            project = await self._db.read(lambda s: store.get_project(s, project_id=project_id))
        self._on_commit()
        return project

    @grpc_method
    async def AssessGate(
        self, request: pb.AssessGateRequest, context: grpc.aio.ServicerContext
    ) -> pb.AssessGateResponse:
        rule = self._rule.current()
        policy.validate(request.assessment, rule)
        verdict = policy.risk_level(request.assessment, rule)

        def build(_: Session, project: pb.Project) -> dict[str, object]:
            rules.check_assess(project, request.stage)
            recorded = rules.prepare_assessment(project, request.stage, request.assessment, verdict, _new_id)
            return {"assessed": pb.GateAssessed(stage=request.stage, assessment=recorded)}

        project = await self._advance(request.project_id, request.actor, build)
        return pb.AssessGateResponse(
            project=project, level=verdict.level, reasons=verdict.reasons, blocked=verdict.level == "high"
        )

    @grpc_method
    async def PassGate(self, request: pb.PassGateRequest, context: grpc.aio.ServicerContext) -> pb.Project:
        def build(_: Session, project: pb.Project) -> dict[str, object]:
            rules.check_pass(project, request.stage)
            return {"gate_passed": pb.GatePassed(stage=request.stage)}

        return await self._advance(request.project_id, request.actor, build)

    @grpc_method
    async def CompleteMeasure(
        self, request: pb.CompleteMeasureRequest, context: grpc.aio.ServicerContext
    ) -> pb.Project:
        def build(_: Session, project: pb.Project) -> dict[str, object]:
            rules.check_complete_measure(project, request.measure_id)
            return {"measure_completed": pb.MeasureCompleted(measure_id=request.measure_id, note=request.note)}

        return await self._advance(request.project_id, request.actor, build)

    @grpc_method
    async def ResolveHazard(self, request: pb.ResolveHazardRequest, context: grpc.aio.ServicerContext) -> pb.Project:
        def build(_: Session, project: pb.Project) -> dict[str, object]:
            rules.check_resolve_hazard(project, request.hazard_id, request.resolution)
            return {"hazard_resolved": pb.HazardResolved(hazard_id=request.hazard_id, resolution=request.resolution)}

        return await self._advance(request.project_id, request.actor, build)

    @grpc_method
    async def LinkCase(self, request: pb.LinkCaseRequest, context: grpc.aio.ServicerContext) -> pb.Project:
        if not request.case_id:
            raise InvalidArgument("case_id", "须指明案件")
        now = Timestamp()
        now.FromDatetime(self._clock.now())

        def build(session: Session, project: pb.Project) -> dict[str, object]:
            rules.check_link(project, request.case_id)
            case = store.find_case(session, case_id=request.case_id)
            if case is None:
                raise NotFound(f"本中心没有案件 {request.case_id}（下级案件同步到本中心后方可关联）")
            link = pb.LinkedCase(
                case_id=case.id, receipt_no=case.receipt_no, category=case.category,
                division_code=case.division_code, note=request.note, linked_at=now,
            )  # fmt: skip
            return {"case_linked": pb.CaseLinked(link=link)}

        return await self._advance(request.project_id, request.actor, build)

    @grpc_method
    async def GetProject(self, request: pb.GetProjectRequest, context: grpc.aio.ServicerContext) -> pb.Project:
        project = await self._db.read(lambda s: store.get_project(s, project_id=request.id))
        if not is_within(project.node, self._node):
            raise NotFound(f"项目 {request.id} 不存在")
        return project

    @grpc_method
    async def ListProjects(
        self, request: pb.ListProjectsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProjectsResponse:
        within = request.within or self._node
        if not is_within(within, self._node):
            raise InvalidArgument("within", f"{within} 不在本中心辖区")
        size = max(1, min(request.page.page_size or 50, self._settings.max_page_size))
        rows = await self._db.read(
            lambda s: store.list_projects(
                s, within=within, limit=size + 1, after=request.page.page_token, status=request.status,
                stage=request.stage, kind=request.kind, level=request.level, with_cases=request.with_cases,
            )
        )  # fmt: skip
        token = rows[size - 1].id if len(rows) > size else ""
        return pb.ListProjectsResponse(projects=rows[:size], page=common_pb2.PageInfo(next_page_token=token))
