"""Routing's case steps take ``expected_version`` as Intake's do: every case step request carries
the same envelope; a stale version is refused with the reason in Chinese and changes nothing; the
current one goes through."""

from __future__ import annotations

from typing import TypedDict

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from fengqiao.cases import store as casestore
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty, submit_request
from tests.services.routing.test_escalation import wait_holder

VILLAGE, TOWN = "371702101001", "371702101"
WHO = "值班员刘洋"
ROUTING_STEPS = {
    "Dispatch",
    "Whistle",
    "ReportForDuty",
    "FormTaskForce",
    "CompleteSubTask",
    "Escalate",
    "AcceptEscalation",
    "RefuseEscalation",
}


class Acting(TypedDict):
    case_id: str
    actor: str


class Envelope(Acting):
    """What every case step request carries besides its slip."""

    expected_version: int


def stale_reason(current: int, given: int) -> str:
    return f"案件已被他人更新（当前版本 {current}，请求版本 {given}），请刷新后重试"


def case_steps() -> list[MethodDescriptor]:
    """Every method of Intake and Routing that advances a case and answers it."""
    services = [f.DESCRIPTOR.services_by_name[n] for f, n in ((intake_pb2, "Intake"), (routing_pb2, "Routing"))]
    return [
        m for s in services for m in s.methods if m.output_type.full_name == "fengqiao.v1.Case" and m.name != "GetCase"
    ]


def test_every_case_step_of_intake_and_routing_carries_case_actor_and_expected_version() -> None:
    steps = case_steps()
    assert ROUTING_STEPS <= {m.name for m in steps} and len(steps) == 13 + len(ROUTING_STEPS)
    for method in [*steps, routing_pb2.DESCRIPTOR.services_by_name["Routing"].methods_by_name["ApplyPolicy"]]:
        fields = method.input_type.fields_by_name
        assert (fields["case_id"].number, fields["actor"].number) == (1, 2), method.name
        assert fields["expected_version"].type == FieldDescriptor.TYPE_INT64, method.name


async def event_ids(local: LocalCounty, code: str, case_id: str) -> list[str]:
    db = local[code].ctx.db  # type: ignore[union-attr]
    return [e.id for e in await db.read(lambda s: casestore.list_events(s, case_id=case_id))]


async def refused_as_stale(routing: routing_pb2_grpc.RoutingStub, method: str, request: Message, current: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(routing, method)(request)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, method
    assert caught.value.details() == stale_reason(current, current - 1), method


async def test_every_routing_step_refuses_a_stale_version_before_anything_else_and_changes_nothing(
    chain_manual: LocalCounty,
) -> None:
    async with channel(chain_manual[TOWN].grpc_address) as ch:
        intake, routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)
        case = (await intake.SubmitCase(submit_request(TOWN, category="劳动争议"))).case
        triage = pb.Triaged(category="劳动争议", response_class=pb.RESPONSE_CLASS_ROUTINE)
        case = await intake.Triage(
            intake_pb2.TriageRequest(case_id=case.id, actor=WHO, expected_version=1, step=triage)
        )
        assert case.version == 2
        before = await event_ids(chain_manual, TOWN, case.id)
        envelope = Envelope(case_id=case.id, actor=WHO, expected_version=1)
        stale = {
            "Dispatch": routing_pb2.DispatchRequest(**envelope, requirement="核实欠薪情况"),
            "Whistle": routing_pb2.WhistleRequest(**envelope, reason="欠薪群体讨薪"),
            "ReportForDuty": routing_pb2.ReportForDutyRequest(**envelope, department="司法所"),
            "FormTaskForce": routing_pb2.FormTaskForceRequest(**envelope, lead_department="人社所"),
            "CompleteSubTask": routing_pb2.CompleteSubTaskRequest(**envelope, subtask_id="T1", result="已核实"),
            "Escalate": routing_pb2.EscalateRequest(**envelope, reason="欠薪涉及县外企业"),
            "AcceptEscalation": routing_pb2.AcceptEscalationRequest(**envelope),
            "RefuseEscalation": routing_pb2.RefuseEscalationRequest(**envelope, reason="请镇里办理"),
        }
        assert set(stale) == ROUTING_STEPS
        for method, request in stale.items():
            await refused_as_stale(routing, method, request, current=2)
        assert await event_ids(chain_manual, TOWN, case.id) == before
        assert (await intake.GetCase(intake_pb2.GetCaseRequest(id=case.id))).version == 2

        acting = Acting(case_id=case.id, actor=WHO)
        case = await routing.Dispatch(routing_pb2.DispatchRequest(**acting, expected_version=2, requirement="核实"))
        assert case.version == 3 and case.assignment.department == "人社所"
        case = await routing.Whistle(routing_pb2.WhistleRequest(**acting, expected_version=3, reason="群体讨薪"))
        assert case.version == 4 and [s.department for s in case.summons] == ["人社所", "司法所"]
        case = await routing.ReportForDuty(
            routing_pb2.ReportForDutyRequest(**acting, expected_version=4, department="司法所")
        )
        assert case.version == 5 and case.summons[1].HasField("reported_at")


async def test_policy_escalation_and_its_acceptance_refuse_a_stale_version_and_take_the_current_one(
    chain_manual: LocalCounty,
) -> None:
    async with channel(chain_manual[VILLAGE].grpc_address) as ch:
        intake, routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)
        case = (await intake.SubmitCase(submit_request(VILLAGE, category="征地拆迁"))).case
        triage = pb.Triaged(category="征地拆迁", response_class=pb.RESPONSE_CLASS_ROUTINE)
        await intake.Triage(intake_pb2.TriageRequest(case_id=case.id, actor=WHO, step=triage))
        before = await event_ids(chain_manual, VILLAGE, case.id)
        policy = routing_pb2.ApplyPolicyRequest(case_id=case.id, actor=WHO, expected_version=1)
        await refused_as_stale(routing, "ApplyPolicy", policy, current=2)
        assert await event_ids(chain_manual, VILLAGE, case.id) == before
        policy.expected_version = 2
        decision = await routing.ApplyPolicy(policy)
        assert decision.escalate and decision.case.version == 3 and decision.case.escalation_to == TOWN

    await wait_holder(chain_manual, TOWN, case.id, VILLAGE, pb.CASE_STATUS_ESCALATING)
    async with channel(chain_manual[TOWN].grpc_address) as ch:
        routing = routing_pb2_grpc.RoutingStub(ch)
        acting = Acting(case_id=case.id, actor="镇值班员")
        refuse = routing_pb2.RefuseEscalationRequest(**acting, expected_version=2, reason="请村里再调解")
        await refused_as_stale(routing, "RefuseEscalation", refuse, current=3)
        await refused_as_stale(
            routing, "AcceptEscalation", routing_pb2.AcceptEscalationRequest(**acting, expected_version=2), current=3
        )
        accepted = await routing.AcceptEscalation(routing_pb2.AcceptEscalationRequest(**acting, expected_version=3))
    assert accepted.holder_node == TOWN and accepted.version == 4
