"""The Intake gRPC methods: the one window (一个口子进) and every step of the closed loop (闭环)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Protocol

import grpc
from google.protobuf.message import Message

from fengqiao.cases import store as casestore
from fengqiao.cases.held import CaseStep, HeldCases
from fengqiao.cases.vocabulary import Vocabulary
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.divisions import tier_of
from fengqiao.errors import NotFound
from fengqiao.grpcutil import grpc_method
from fengqiao.security.sealing import Keyring
from fengqiao.telemetry import current_headers
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2, intake_pb2, intake_pb2_grpc
from fengqiao.workdays import WorkCalendar
from services.intake import attachments, deadlines, rules, store
from services.intake.config import IntakeSettings
from services.intake.writer import IntakeWriter


class StepRequest(CaseStep, Protocol):
    """A closed-loop step request (TriageRequest, AssignRequest, ...): its slip is ``step``."""

    @property
    def step(self) -> Message: ...


class IntakeHandlers(intake_pb2_grpc.IntakeServicer):
    """Takes cases in at this node, advances the ones it holds, answers for its subtree."""

    def __init__(
        self,
        *,
        db: Database,
        node_code: str,
        topology: Topology,
        vocabulary: Vocabulary,
        settings: IntakeSettings,
        clock: Clock,
        files: attachments.AttachmentStore,
        writer: IntakeWriter,
        key: Keyring,
        on_commit: Callable[[], None],
        calendar: Callable[[], WorkCalendar] = lambda: deadlines.MONDAY_TO_FRIDAY,
    ) -> None:
        self._key = key
        self._calendar = calendar
        self._db = db
        self._node = node_code
        self._topology = topology
        self._vocabulary = vocabulary
        self._settings = settings
        self._clock = clock
        self._files = files
        self._writer = writer
        self._held_cases = HeldCases(db=db, node_code=node_code, clock=clock, key=key, on_commit=on_commit)

    # 受理 and reading ------------------------------------------------------------------

    @grpc_method
    async def SubmitCase(
        self, request: intake_pb2.SubmitCaseRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.SubmitCaseResponse:
        rules.validate_submit(
            request, node_code=self._node, topology=self._topology, vocabulary=self._vocabulary, settings=self._settings
        )
        submission = store.Submission(
            request=request,
            actor=request.reporter or "intake",
            deadline=deadlines.intake_deadline(
                request.response_class, self._clock.now(), self._settings, calendar=self._calendar()
            ),
            headers=current_headers(),
        )
        case, duplicate = await self._writer.submit(submission)
        return intake_pb2.SubmitCaseResponse(case=self._key.opened(case), duplicate=duplicate)

    async def _visible_case(self, key: str) -> pb.Case:
        case = await self._db.run(lambda s: casestore.find_case(s, key=key))
        if case is None or not case.origin_node.startswith(self._node):
            raise NotFound(f"案件 {key} 不存在或不在本中心辖区")
        return case

    @grpc_method
    async def GetCase(self, request: intake_pb2.GetCaseRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return self._key.opened(await self._visible_case(request.id))

    @grpc_method
    async def ListCases(
        self, request: intake_pb2.ListCasesRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ListCasesResponse:
        within = request.origin_node or self._node
        if not within.startswith(self._node):
            raise NotFound(f"{within} 不在本中心辖区")
        size = max(1, min(request.page.page_size or self._settings.page_size_default, self._settings.page_size_max))
        where = casestore.CaseFilter(
            within=within,
            category=request.category,
            status=int(request.status),
            grid=request.grid,
            channel=request.channel,
            response_class=int(request.response_class),
            holder_node=request.holder_node,
            overdue_at=self._clock.now() if request.overdue_only else None,
            received_from=request.received_from.ToDatetime(dt.UTC) if request.HasField("received_from") else None,
            received_to=request.received_to.ToDatetime(dt.UTC) if request.HasField("received_to") else None,
        )
        cases, token = await self._db.run(
            lambda s: casestore.list_cases(s, where=where, page_size=size, page_token=request.page.page_token)
        )
        opened = [self._key.opened(c) for c in cases]
        return intake_pb2.ListCasesResponse(cases=opened, page=common_pb2.PageInfo(next_page_token=token))

    @grpc_method
    async def ListCaseEvents(
        self, request: intake_pb2.ListCaseEventsRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ListCaseEventsResponse:
        case = await self._visible_case(request.case_id)
        events = await self._db.run(lambda s: casestore.list_events(s, case_id=case.id))
        return intake_pb2.ListCaseEventsResponse(events=[self._key.opened_event(e) for e in events])

    # The closed loop ---------------------------------------------------------------------

    async def _simple(self, request: StepRequest, field: str) -> pb.Case:
        step = request.step
        return await self._held_cases.advance(request, lambda _case: [(field, step)])

    @grpc_method
    async def Triage(self, request: intake_pb2.TriageRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        self._vocabulary.check_category(request.step.category)

        def payloads(case: pb.Case) -> list[tuple[str, Message]]:
            step = pb.Triaged()
            step.CopyFrom(request.step)
            given = step.deadline.ToDatetime(dt.UTC) if step.HasField("deadline") else None
            start = case.clock_start.ToDatetime(dt.UTC)
            ends = deadlines.deadline_for(
                step.response_class, start, self._settings, given=given, calendar=self._calendar()
            )
            step.deadline.FromDatetime(ends)
            return [("triaged", step)]

        return await self._held_cases.advance(request, payloads)

    @grpc_method
    async def Assign(self, request: intake_pb2.AssignRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return await self._simple(request, "assigned")

    @grpc_method
    async def Acknowledge(self, request: intake_pb2.AcknowledgeRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return await self._held_cases.advance(
            request, lambda case: [("acknowledged", pb.Acknowledged(department=case.assignment.department))]
        )

    @grpc_method
    async def Return(self, request: intake_pb2.ReturnRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return await self._simple(request, "returned")

    @grpc_method
    async def RequestExtension(
        self, request: intake_pb2.RequestExtensionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        def payloads(case: pb.Case) -> list[tuple[str, Message]]:
            deadlines.check_extension_in_time(case, self._clock.now())
            return [("extension_requested", request.step)]

        return await self._held_cases.advance(request, payloads)

    @grpc_method
    async def DecideExtension(
        self, request: intake_pb2.DecideExtensionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        return await self._simple(request, "extension_decided")

    @grpc_method
    async def Start(self, request: intake_pb2.StartRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return await self._simple(request, "started")

    @grpc_method
    async def ReportProgress(
        self, request: intake_pb2.ReportProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        return await self._simple(request, "progress")

    @grpc_method
    async def SubmitFeedback(
        self, request: intake_pb2.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        slip = request.step.slip
        await self._db.run(lambda s: attachments.require_all(s, hashes=list(slip.photos), field="slip.photos"))
        await self._db.run(lambda s: attachments.require_all(s, hashes=list(slip.signatures), field="slip.signatures"))
        return await self._simple(request, "feedback")

    @grpc_method
    async def Review(self, request: intake_pb2.ReviewRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return await self._simple(request, "reviewed")

    @grpc_method
    async def Close(self, request: intake_pb2.CloseRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        step = pb.Closed()
        step.CopyFrom(request.step)
        step.resolved_tier = common_pb2.Tier.ValueType(tier_of(self._node))  # the holder's tier settles it
        return await self._held_cases.advance(request, lambda _case: [("closed", step)])

    @grpc_method
    async def FollowUp(self, request: intake_pb2.FollowUpRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        def payloads(_case: pb.Case) -> list[tuple[str, Message]]:
            steps: list[tuple[str, Message]] = [("follow_up", request.step)]
            slip = request.step.slip
            if 1 <= slip.satisfaction <= 2:  # 发回重办
                reopened = pb.Reopened(reason=f"回访不满意（{slip.satisfaction} 分）：{slip.comment or '未说明'}")
                ends = deadlines.reopen_deadline(self._clock.now(), self._settings, calendar=self._calendar())
                reopened.deadline.FromDatetime(ends)
                steps.append(("reopened", reopened))
            return steps

        return await self._held_cases.advance(request, payloads)

    @grpc_method
    async def Archive(self, request: intake_pb2.ArchiveRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        return await self._simple(request, "archived")

    # Attachments -------------------------------------------------------------------------

    @grpc_method
    async def PutAttachment(
        self, request: intake_pb2.PutAttachmentRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.AttachmentRef:
        attachments.check(
            request.content,
            request.content_type,
            max_bytes=self._settings.attachment_max_bytes,
            allowed=self._settings.attachment_types,
        )
        digest = await asyncio.to_thread(self._files.write, request.content)
        now = self._clock.now()
        await self._db.run(
            lambda s: attachments.record(
                s,
                sha256=digest,
                size=len(request.content),
                content_type=request.content_type,
                filename=request.filename[:200],
                now=now,
            )
        )
        return intake_pb2.AttachmentRef(sha256=digest, size=len(request.content), content_type=request.content_type)

    @grpc_method
    async def GetAttachment(
        self, request: intake_pb2.GetAttachmentRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.Attachment:
        row = await self._db.run(lambda s: attachments.find(s, sha256=request.sha256))
        content = await asyncio.to_thread(self._files.read, request.sha256)
        return intake_pb2.Attachment(
            ref=intake_pb2.AttachmentRef(sha256=row.sha256, size=row.size, content_type=row.content_type),
            content=content,
        )
