"""The Intake gRPC methods (一个口子进)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from sqlalchemy.exc import IntegrityError

from fengqiao import casestore
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.errors import NotFound
from fengqiao.grpcutil import grpc_method
from fengqiao.telemetry import current_headers
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2, common_pb2, intake_pb2, intake_pb2_grpc
from services.intake import rules, store
from services.intake.config import IntakeSettings


class IntakeHandlers(intake_pb2_grpc.IntakeServicer):
    """Takes cases in at this node and answers for the cases of its subtree."""

    def __init__(
        self,
        *,
        db: Database,
        node_code: str,
        topology: Topology,
        settings: IntakeSettings,
        clock: Clock,
        on_commit: Callable[[], None],
    ) -> None:
        self._db = db
        self._node = node_code
        self._topology = topology
        self._settings = settings
        self._clock = clock
        self._on_commit = on_commit

    @grpc_method
    async def SubmitCase(
        self, request: intake_pb2.SubmitCaseRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.SubmitCaseResponse:
        rules.validate_submit(request, node_code=self._node, topology=self._topology, settings=self._settings)
        now, headers = self._clock.now(), current_headers()
        actor = request.reporter or "intake"
        try:
            case, duplicate = await self._db.run(
                lambda s: store.submit(
                    s, request=request, node_code=self._node, actor=actor, now=now, headers=headers
                )
            )
        except IntegrityError:  # a concurrent retry of the same request won the race
            found = await self._db.run(
                lambda s: casestore.find_by_request(
                    s, origin_node=self._node, client_request_id=request.client_request_id
                )
            )
            if found is None:
                raise
            case, duplicate = found, True
        if not duplicate:
            self._on_commit()
        return intake_pb2.SubmitCaseResponse(case=case, duplicate=duplicate)

    @grpc_method
    async def GetCase(
        self, request: intake_pb2.GetCaseRequest, context: grpc.aio.ServicerContext
    ) -> case_pb2.Case:
        case = await self._db.run(lambda s: casestore.find_case(s, key=request.id))
        if case is None or not case.origin_node.startswith(self._node):
            raise NotFound(f"案件 {request.id} 不存在或不在本中心辖区")
        return case

    @grpc_method
    async def ListCases(
        self, request: intake_pb2.ListCasesRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ListCasesResponse:
        within = request.origin_node or self._node
        if not within.startswith(self._node):
            raise NotFound(f"{within} 不在本中心辖区")
        size = request.page.page_size or self._settings.page_size_default
        size = max(1, min(size, self._settings.page_size_max))
        cases, token = await self._db.run(
            lambda s: casestore.list_cases(
                s,
                within=within,
                category=request.category,
                status=int(request.status),
                page_size=size,
                page_token=request.page.page_token,
            )
        )
        return intake_pb2.ListCasesResponse(cases=cases, page=common_pb2.PageInfo(next_page_token=token))

    @grpc_method
    async def ListCaseEvents(
        self, request: intake_pb2.ListCaseEventsRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ListCaseEventsResponse:
        case = await self._db.run(lambda s: casestore.find_case(s, key=request.case_id))
        if case is None or not case.origin_node.startswith(self._node):
            raise NotFound(f"案件 {request.case_id} 不存在或不在本中心辖区")
        events = await self._db.run(lambda s: casestore.list_events(s, case_id=case.id))
        return intake_pb2.ListCaseEventsResponse(events=events)
