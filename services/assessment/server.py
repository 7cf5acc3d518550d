"""Wiring of the assessment service."""

from __future__ import annotations

from fengqiao.grpcutil import Registration
from fengqiao.node import NodeContext, ServiceParts
from fengqiao.v1 import assessment_pb2_grpc
from services.assessment import models  # noqa: F401  (registers the tables)
from services.assessment.handlers import AssessmentHandlers


def create(ctx: NodeContext) -> ServiceParts:
    """Assessment lists the 四必评 projects of the subtree."""
    handlers = AssessmentHandlers(db=ctx.db, node_code=ctx.spec.code)
    return ServiceParts(
        registration=Registration(
            "fengqiao.v1.Assessment", assessment_pb2_grpc.add_AssessmentServicer_to_server, handlers
        )
    )
