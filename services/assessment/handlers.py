"""The Assessment gRPC methods (四必评). Registering projects and gates comes with its issue."""

from __future__ import annotations

import grpc

from fengqiao.db import Database
from fengqiao.grpcutil import grpc_method
from fengqiao.v1 import assessment_pb2, assessment_pb2_grpc, common_pb2
from services.assessment import store


class AssessmentHandlers(assessment_pb2_grpc.AssessmentServicer):
    def __init__(self, *, db: Database, node_code: str) -> None:
        self._db = db
        self._node = node_code

    @grpc_method
    async def ListProjects(
        self, request: assessment_pb2.ListProjectsRequest, context: grpc.aio.ServicerContext
    ) -> assessment_pb2.ListProjectsResponse:
        size = max(1, min(request.page.page_size or 50, 500))
        rows = await self._db.run(
            lambda s: store.list_projects(s, within=self._node, limit=size + 1, after=request.page.page_token)
        )
        token = rows[size - 1].id if len(rows) > size else ""
        return assessment_pb2.ListProjectsResponse(
            projects=[
                assessment_pb2.Project(id=r.id, name=r.name, node=r.node_code, stage=r.stage) for r in rows[:size]
            ],
            page=common_pb2.PageInfo(next_page_token=token),
        )
