"""上报 village → town over JetStream: accepted or refused, exactly one holder, the village learns the outcome."""

from __future__ import annotations

import grpc
import pytest

from fengqiao.bus import MSG_ID
from fengqiao.cases import lifecycle
from fengqiao.cases import store as casestore
from fengqiao.divisions import case_subject
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty, submit_request
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


async def case_at(local: LocalCounty, code: str, case_id: str) -> pb.Case | None:
    db = local[code].ctx.db  # type: ignore[union-attr]
    return await db.read(lambda s: casestore.load_case(s, case_id=case_id))


async def events_at(local: LocalCounty, code: str, case_id: str) -> list[str]:
    db = local[code].ctx.db  # type: ignore[union-attr]
    events = await db.read(lambda s: casestore.list_events(s, case_id=case_id))
    return [lifecycle.event_type(e) for e in events]


async def wait_holder(local: LocalCounty, code: str, case_id: str, holder: str, status: int) -> pb.Case:
    async def there() -> bool:
        case = await case_at(local, code, case_id)
        return case is not None and case.holder_node == holder and case.status == status

    await eventually(there, within_s=5, what=f"{code} sees the case held by {holder}")
    found = await case_at(local, code, case_id)
    assert found is not None
    return found


async def submit(local: LocalCounty, **fields: object) -> pb.Case:
    async with channel(local[VILLAGE].grpc_address) as ch:
        return (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE, **fields))).case


async def test_operator_escalation_is_accepted_by_the_town_and_every_tier_agrees_on_the_holder(
    chain: LocalCounty,
) -> None:
    case = await submit(chain)
    async with channel(chain[VILLAGE].grpc_address) as ch:
        for blank in ("", "   "):  # an operator's 上报 needs a stated reason
            with pytest.raises(grpc.aio.AioRpcError) as unreasoned:
                await routing_pb2_grpc.RoutingStub(ch).Escalate(
                    routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason=blank)
                )
            assert unreasoned.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "须说明理由" in (unreasoned.value.details() or "")
        escalating = await routing_pb2_grpc.RoutingStub(ch).Escalate(
            routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="当事人分属两村，村级无法调处")
        )
    assert escalating.status == pb.CASE_STATUS_ESCALATING and escalating.escalation_to == TOWN
    at_town = await wait_holder(chain, TOWN, case.id, TOWN, pb.CASE_STATUS_RECEIVED)
    assert at_town.decided_rule == "operator" and at_town.escalations == 1
    at_village = await wait_holder(chain, VILLAGE, case.id, TOWN, pb.CASE_STATUS_RECEIVED)
    await wait_holder(chain, COUNTY, case.id, TOWN, pb.CASE_STATUS_RECEIVED)
    assert at_village == at_town

    async with channel(chain[VILLAGE].grpc_address) as ch:  # the village keeps a read-only copy
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake_pb2_grpc.IntakeStub(ch).Triage(
                intake_pb2.TriageRequest(case_id=case.id, actor="村值班员", step=pb.Triaged(category="邻里"))
            )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    async with channel(chain[TOWN].grpc_address) as ch:  # the town now advances it; the village learns
        await intake_pb2_grpc.IntakeStub(ch).Triage(
            intake_pb2.TriageRequest(
                case_id=case.id,
                actor="镇值班员",
                step=pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE),
            )
        )
    await wait_holder(chain, VILLAGE, case.id, TOWN, pb.CASE_STATUS_TRIAGED)


async def test_containment_policy_sends_a_land_acquisition_dispute_to_the_town(chain: LocalCounty) -> None:
    case = await submit(chain, category="征地拆迁")
    async with channel(chain[VILLAGE].grpc_address) as ch:
        decision = await routing_pb2_grpc.RoutingStub(ch).ApplyPolicy(
            routing_pb2.ApplyPolicyRequest(case_id=case.id, actor="村值班员")
        )
    assert decision.escalate and decision.next_node == TOWN
    assert decision.rule_id == "land-acquisition-to-town" and decision.case.decided_rule == decision.rule_id
    await wait_holder(chain, TOWN, case.id, TOWN, pb.CASE_STATUS_RECEIVED)

    small = await submit(chain, category="邻里")
    async with channel(chain[VILLAGE].grpc_address) as ch:
        stays = await routing_pb2_grpc.RoutingStub(ch).ApplyPolicy(
            routing_pb2.ApplyPolicyRequest(case_id=small.id, actor="村值班员")
        )
    assert not stays.escalate and stays.case.holder_node == VILLAGE and stays.case.status == pb.CASE_STATUS_RECEIVED


async def test_a_refused_escalation_returns_to_the_village_with_the_reason(chain_manual: LocalCounty) -> None:
    local = chain_manual
    case = await submit(local)
    async with channel(local[VILLAGE].grpc_address) as ch:
        await routing_pb2_grpc.RoutingStub(ch).Escalate(
            routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="村里调解不成")
        )
    await wait_holder(local, TOWN, case.id, VILLAGE, pb.CASE_STATUS_ESCALATING)
    async with channel(local[TOWN].grpc_address) as ch:
        refused = await routing_pb2_grpc.RoutingStub(ch).RefuseEscalation(
            routing_pb2.RefuseEscalationRequest(case_id=case.id, actor="镇值班员", reason="邻里小事，请村里再调解")
        )
    assert refused.holder_node == VILLAGE and refused.status == pb.CASE_STATUS_RECEIVED
    await wait_holder(local, VILLAGE, case.id, VILLAGE, pb.CASE_STATUS_RECEIVED)
    db = local[VILLAGE].ctx.db  # type: ignore[union-attr]
    events = await db.read(lambda s: casestore.list_events(s, case_id=case.id))
    assert events[-1].escalation_refused.reason == "邻里小事，请村里再调解" and events[-1].node == TOWN

    async with channel(local[VILLAGE].grpc_address) as ch:  # and may be escalated again, then accepted
        await routing_pb2_grpc.RoutingStub(ch).Escalate(
            routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="二次调解仍不成")
        )
    await wait_holder(local, TOWN, case.id, VILLAGE, pb.CASE_STATUS_ESCALATING)
    async with channel(local[TOWN].grpc_address) as ch:
        taken = await routing_pb2_grpc.RoutingStub(ch).AcceptEscalation(
            routing_pb2.AcceptEscalationRequest(case_id=case.id, actor="镇值班员")
        )
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await routing_pb2_grpc.RoutingStub(ch).AcceptEscalation(
                routing_pb2.AcceptEscalationRequest(case_id=case.id, actor="镇值班员")
            )
    assert taken.holder_node == TOWN
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await wait_holder(local, VILLAGE, case.id, TOWN, pb.CASE_STATUS_RECEIVED)


async def test_duplicated_requests_and_a_town_restart_still_give_exactly_one_holder(chain: LocalCounty) -> None:
    await chain.stop(TOWN)  # the town is down when the village escalates
    case = await submit(chain)
    async with channel(chain[VILLAGE].grpc_address) as ch:
        await routing_pb2_grpc.RoutingStub(ch).Escalate(
            routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="跨村纠纷")
        )
    village_db = chain[VILLAGE].ctx.db  # type: ignore[union-attr]
    events = await village_db.read(lambda s: casestore.list_events(s, case_id=case.id))
    request = events[-1]
    js = chain[VILLAGE].ctx.js  # type: ignore[union-attr]
    for copy in range(3):  # the same request again, as another path would deliver it
        await js.publish(
            case_subject(VILLAGE, "escalation_requested"),
            request.SerializeToString(),
            headers={MSG_ID: f"{request.id}:copy{copy}"},
        )
    await chain.start(TOWN)
    await wait_holder(chain, TOWN, case.id, TOWN, pb.CASE_STATUS_RECEIVED)
    await wait_holder(chain, VILLAGE, case.id, TOWN, pb.CASE_STATUS_RECEIVED)
    assert (await events_at(chain, TOWN, case.id)).count("escalation_accepted") == 1
    assert (await events_at(chain, VILLAGE, case.id)) == (await events_at(chain, TOWN, case.id))
