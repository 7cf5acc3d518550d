"""Dispatch to departments at a town center over gRPC with real NATS: 交办 by category, 中心吹哨、
部门报到 with overdue marked once by the clock watch, and a 攻坚 task force gating 办结."""

from __future__ import annotations

import collections
import datetime as dt

import grpc
import pytest

from fengqiao.cases import lifecycle
from fengqiao.cases import store as casestore
from fengqiao.clock import FakeClock
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2, intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty, submit_request
from services.intake.clocks import ClockWatch
from services.intake.config import IntakeSettings
from tests.services.intake.test_closed_loop import ts
from tests.system.test_county_sync import eventually

TOWN, COUNTY = "371702101", "371702"
WHO = "值班员刘洋"


async def event_counts(local: LocalCounty, code: str, case_id: str) -> collections.Counter[str]:
    events = await local[code].ctx.db.run(lambda s: casestore.list_events(s, case_id=case_id))  # type: ignore[union-attr]
    return collections.Counter(lifecycle.event_type(e) for e in events)


async def scan(local: LocalCounty, times: int = 2) -> None:
    ctx = local[TOWN].ctx
    assert ctx is not None
    watch = ClockWatch(
        db=ctx.db, node_code=TOWN, settings=IntakeSettings(), clock=ctx.clock, on_commit=ctx.outbox_written
    )
    for _ in range(times):
        await watch.scan_once()


async def test_town_dispatches_by_category_whistles_and_marks_a_late_department_once(chain: LocalCounty) -> None:
    clock = chain.clock
    assert isinstance(clock, FakeClock)
    async with channel(chain[TOWN].grpc_address) as ch:
        intake, routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)
        request = submit_request(TOWN, category="征地拆迁", response_class=pb.RESPONSE_CLASS_URGENT)
        case = (await intake.SubmitCase(request)).case
        triage = pb.Triaged(category="征地拆迁", response_class=pb.RESPONSE_CLASS_URGENT)
        await intake.Triage(intake_pb2.TriageRequest(case_id=case.id, actor=WHO, step=triage))

        case = await routing.Dispatch(
            routing_pb2.DispatchRequest(case_id=case.id, actor=WHO, requirement="摸排补偿争议")
        )
        assert case.assignment.department == "自然资源所"
        assert case.status == pb.CASE_STATUS_ASSIGNED

        case = await routing.Whistle(routing_pb2.WhistleRequest(case_id=case.id, actor=WHO, reason="群体性上访苗头"))
        called = {s.department: s for s in case.summons}
        assert set(called) == {"自然资源所", "信访办", "司法所", "派出所"}
        assert called["司法所"].report_by.ToDatetime(dt.UTC) == clock.now() + dt.timedelta(minutes=30)

        for department in ("司法所", "派出所"):
            await routing.ReportForDuty(
                routing_pb2.ReportForDutyRequest(case_id=case.id, actor=department, department=department)
            )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await routing.ReportForDuty(
                routing_pb2.ReportForDutyRequest(case_id=case.id, actor="妇联", department="妇联")
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "未被吹哨召集" in (
            caught.value.details() or ""
        )

        clock.advance(dt.timedelta(minutes=31))  # 信访办 (常驻, 30 min) is late; 自然资源所 (随驻, 120 min) not yet
        await scan(chain)
        counts = await event_counts(chain, TOWN, case.id)
        assert counts["summons_overdue"] == 1
        case = await intake.GetCase(intake_pb2.GetCaseRequest(id=case.id))
        assert [s.department for s in case.summons if s.overdue] == ["信访办"]

        clock.advance(dt.timedelta(minutes=90))
        await scan(chain)
        assert (await event_counts(chain, TOWN, case.id))["summons_overdue"] == 2

    async def county_sees_the_calls() -> bool:
        counts = await event_counts(chain, COUNTY, case.id)
        return counts["whistled"] == 1 and counts["reported_for_duty"] == 2 and counts["summons_overdue"] == 2

    await eventually(county_sees_the_calls, within_s=10, what="吹哨报到 events replicated to the county")


async def test_a_task_force_case_closes_only_after_every_subtask_and_a_late_one_is_marked_once(
    chain: LocalCounty,
) -> None:
    clock = chain.clock
    assert isinstance(clock, FakeClock)
    async with channel(chain[TOWN].grpc_address) as ch:
        intake, routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)
        case = (await intake.SubmitCase(submit_request(TOWN, category="山林土地"))).case
        cid = case.id
        deadline = ts(clock.now() + dt.timedelta(days=5))
        triage = pb.Triaged(category="山林土地", response_class=pb.RESPONSE_CLASS_TASK_FORCE, deadline=deadline)
        await intake.Triage(intake_pb2.TriageRequest(case_id=cid, actor=WHO, step=triage))

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await routing.FormTaskForce(
                routing_pb2.FormTaskForceRequest(case_id=cid, actor=WHO, lead_department="县司法局")
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # not a department of this town
        subtasks = [
            pb.SubTask(department="派出所", task="维护现场秩序", deadline=ts(clock.now() + dt.timedelta(days=1))),
            pb.SubTask(department="司法所", task="组织联合调解", deadline=ts(clock.now() + dt.timedelta(days=3))),
        ]
        request = routing_pb2.FormTaskForceRequest(
            case_id=cid, actor=WHO, lead_department="自然资源所", subtasks=subtasks
        )
        case = await routing.FormTaskForce(request)
        assert case.lead_department == "自然资源所" and [t.id for t in case.subtasks] == ["T1", "T2"]

        await routing.Dispatch(routing_pb2.DispatchRequest(case_id=cid, actor=WHO, requirement="牵头勘界"))
        await intake.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=cid, actor="自然资源所"))
        await intake.Start(intake_pb2.StartRequest(case_id=cid, actor="自然资源所"))
        slip = pb.FeedbackSlip(result="重新勘定林界，双方签字确认", mediated=True, mediation_level="中心联合调解")
        await intake.SubmitFeedback(
            intake_pb2.SubmitFeedbackRequest(case_id=cid, actor="自然资源所", step=pb.FeedbackGiven(slip=slip))
        )
        await intake.Review(intake_pb2.ReviewRequest(case_id=cid, actor=WHO, step=pb.Reviewed(approved=True)))

        clock.advance(dt.timedelta(days=1, minutes=1))  # T1 is past its own deadline
        await scan(chain)
        assert (await event_counts(chain, TOWN, cid))["subtask_overdue"] == 1

        close = intake_pb2.CloseRequest(
            case_id=cid, actor=WHO, step=pb.Closed(summary="化解", resolved_tier=common_pb2.TIER_TOWN)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.Close(close)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "子任务未完成" in (caught.value.details() or "")
        await routing.CompleteSubTask(
            routing_pb2.CompleteSubTaskRequest(case_id=cid, actor="派出所", subtask_id="T1", result="现场秩序平稳")
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await intake.Close(close)
        await routing.CompleteSubTask(
            routing_pb2.CompleteSubTaskRequest(case_id=cid, actor="司法所", subtask_id="T2", result="达成协议")
        )
        case = await intake.Close(close)
        assert case.status == pb.CASE_STATUS_CLOSED and case.resolved_tier == common_pb2.TIER_TOWN
        await scan(chain)
        assert (await event_counts(chain, TOWN, cid))["subtask_overdue"] == 1  # once, and none after done


async def test_departments_of_a_center_are_listed_with_their_presence(chain: LocalCounty) -> None:
    async with channel(chain[TOWN].grpc_address) as ch:
        routing = routing_pb2_grpc.RoutingStub(ch)
        every = (await routing.ListDepartments(routing_pb2.ListDepartmentsRequest())).departments
        concerned = (await routing.ListDepartments(routing_pb2.ListDepartmentsRequest(category="劳动争议"))).departments
    labels = {d.name: d.presence_label for d in every}
    assert labels["司法所"] == "常驻" and labels["市场监管所"] == "轮驻" and labels["综合执法队"] == "随驻"
    assert [d.name for d in concerned] == ["人社所", "司法所"]
