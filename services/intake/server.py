"""Wiring of the intake service: its gRPC methods, the group-commit writer and the clock watch."""

from __future__ import annotations

import logging

from fengqiao import workdays
from fengqiao.grpcutil import Registration
from fengqiao.rulefile import ReloadingFile
from fengqiao.service import NodeContext, ServiceParts
from fengqiao.v1 import intake_pb2_grpc
from services.intake import attachments
from services.intake.attachments import AttachmentStore
from services.intake.clocks import ClockWatch
from services.intake.config import IntakeSettings
from services.intake.handlers import IntakeHandlers
from services.intake.writer import IntakeWriter

log = logging.getLogger(__name__)


def create(ctx: NodeContext) -> ServiceParts:
    """Intake takes cases in and runs the closed loop."""
    settings = IntakeSettings()
    calendar = ReloadingFile(settings.calendar_file, workdays.load, what="工作日历").current
    this_year = ctx.clock.now().year
    missing = calendar().unpublished([this_year, this_year + 1])
    if missing and (settings.routine_working_days or settings.reopen_working_days):
        log.warning("working-day calendar %s has no arrangement for %s: counting Monday to Friday there",
                    settings.calendar_file, missing)  # fmt: skip
    key = ctx.personal_key
    writer = IntakeWriter(db=ctx.db, node_code=ctx.spec.code, clock=ctx.clock, key=key, on_commit=ctx.outbox_written)
    handlers = IntakeHandlers(
        db=ctx.db,
        node_code=ctx.spec.code,
        topology=ctx.topology,
        vocabulary=ctx.settings.vocabulary(),
        settings=settings,
        clock=ctx.clock,
        files=AttachmentStore(attachments.folder(ctx.settings.data_dir, ctx.spec.code)),
        writer=writer,
        key=key,
        on_commit=ctx.outbox_written,
        calendar=calendar,
    )
    watch = ClockWatch(
        db=ctx.db,
        node_code=ctx.spec.code,
        settings=settings,
        clock=ctx.clock,
        on_commit=ctx.outbox_written,
        calendar=calendar,
    )
    return ServiceParts(
        registration=Registration("fengqiao.v1.Intake", intake_pb2_grpc.add_IntakeServicer_to_server, handlers),
        tasks=[writer.run, watch.run],
    )
