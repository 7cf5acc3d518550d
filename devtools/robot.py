"""Simulated center work for the demo: each village and town works through the simulator's cases
it holds, and only those (a case an operator takes in, or an escalation of one, is left to the
operators in the console).

A village first applies the county's containment policy (小事不出村、大事不出镇): what a rule
sends up is escalated to the town, whose robot accepts it (接收上报; the demo's towns do not
accept escalations by themselves); the rest, and what the town takes, go round the closed loop —
分类研判, 交办, 签收, 处置, 反馈, 审核, 办结, 回访, 归档 — with the occasional 退单, 审核 rework and
unsatisfied 回访 that reopens a case.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

import grpc

from devtools.simulator import SIMULATED
from fengqiao.divisions import Tier
from fengqiao.grpcutil import channel
from fengqiao.topology import NodeSpec, Topology
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc

log = logging.getLogger(__name__)
DEPARTMENTS = {
    "邻里": "村调委会", "婚姻家庭": "妇联", "房屋宅基地": "自然资源所", "山林土地": "自然资源所",
    "合同": "司法所", "劳动争议": "人社所", "消费": "市监所", "环境污染": "生态环境所",
    "治安隐患": "派出所", "安全隐患": "应急办", "道路交通": "派出所", "征地拆迁": "征收办",
}  # fmt: skip
LEVEL = {Tier.VILLAGE: "网格员现场调解", Tier.TOWN: "中心联合调解（司法所）", Tier.COUNTY: "专业调解（律师、仲裁）"}


async def _walk(api: intake_pb2_grpc.IntakeAsyncStub, case: pb.Case, rng: random.Random, tier: Tier) -> None:
    """Take one case from 受理 round the closed loop to 归档."""
    cid, who = case.id, "值班员"
    dept = DEPARTMENTS.get(case.category, "综治中心")
    await api.Triage(
        intake_pb2.TriageRequest(
            case_id=cid, actor=who, step=pb.Triaged(category=case.category, response_class=case.response_class)
        )
    )
    slip = pb.AssignmentSlip(department=dept, requirement="依法依规调处，按时反馈")
    await api.Assign(intake_pb2.AssignRequest(case_id=cid, actor=who, step=pb.Assigned(slip=slip)))
    if rng.random() < 0.1:
        reason = pb.Returned(reason="不属本部门职责")
        await api.Return(intake_pb2.ReturnRequest(case_id=cid, actor=dept, step=reason))
        await api.Assign(intake_pb2.AssignRequest(case_id=cid, actor=who, step=pb.Assigned(slip=slip)))
    await api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=cid, actor=dept))
    await api.Start(intake_pb2.StartRequest(case_id=cid, actor=dept))
    feedback = pb.FeedbackSlip(result="已调解，双方达成一致", mediated=rng.random() < 0.95, mediation_level=LEVEL[tier])
    give = intake_pb2.SubmitFeedbackRequest(case_id=cid, actor=dept, step=pb.FeedbackGiven(slip=feedback))
    await api.SubmitFeedback(give)
    if rng.random() < 0.1:
        rework = pb.Reviewed(approved=False, opinion="缺少当事人签字")
        await api.Review(intake_pb2.ReviewRequest(case_id=cid, actor=who, step=rework))
        await api.SubmitFeedback(give)
    await api.Review(intake_pb2.ReviewRequest(case_id=cid, actor=who, step=pb.Reviewed(approved=True)))
    await api.Close(intake_pb2.CloseRequest(case_id=cid, actor=who, step=pb.Closed(summary="已化解")))
    score = rng.choices([5, 4, 3, 2], weights=[70, 20, 6, 4])[0]
    evaluation = pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=score, method="电话回访"))
    after = await api.FollowUp(intake_pb2.FollowUpRequest(case_id=cid, actor=who, step=evaluation))
    if after.status == pb.CASE_STATUS_FOLLOWED_UP:
        await api.Archive(intake_pb2.ArchiveRequest(case_id=cid, actor=who))


def _simulated(cases: Iterable[pb.Case]) -> list[pb.Case]:
    return [c for c in cases if c.client_request_id.startswith(SIMULATED)]


async def _accept_escalations(
    intake: intake_pb2_grpc.IntakeAsyncStub, routing: routing_pb2_grpc.RoutingAsyncStub, node: NodeSpec
) -> None:
    """接收上报 of the simulator's cases sent up to ``node``; they are worked as its own next round."""
    asked = await intake.ListCases(intake_pb2.ListCasesRequest(origin_node=node.code, status=pb.CASE_STATUS_ESCALATING))
    for case in _simulated(asked.cases):
        if case.escalation_to == node.code:
            accept = routing_pb2.AcceptEscalationRequest(case_id=case.id, actor="值班员", expected_version=case.version)
            await routing.AcceptEscalation(accept)


async def _work(node: NodeSpec, rng: random.Random, stop: asyncio.Event, interval_s: float) -> None:
    async with channel(node.grpc_address) as ch:
        intake, routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)
        while not stop.is_set():
            try:
                if node.tier is not Tier.VILLAGE:
                    await _accept_escalations(intake, routing, node)
                waiting = await intake.ListCases(
                    intake_pb2.ListCasesRequest(holder_node=node.code, status=pb.CASE_STATUS_RECEIVED)
                )
                for case in _simulated(waiting.cases):
                    if node.tier is Tier.VILLAGE:
                        decision = await routing.ApplyPolicy(
                            routing_pb2.ApplyPolicyRequest(
                                case_id=case.id, actor="值班员", people=rng.choice([1, 2, 2, 3, 6])
                            )
                        )
                        if decision.escalate:
                            continue
                    await _walk(intake, case, rng, node.tier)
            except grpc.aio.AioRpcError as exc:
                log.warning("handling at %s: %s %s", node.code, exc.code().name, exc.details())
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass


async def run_handling(
    *, topology: Topology, stop: asyncio.Event, seed: int | None = None, interval_s: float = 3.0
) -> None:
    """Every village and town works through its cases every ``interval_s`` until ``stop``."""
    rng = random.Random(seed)
    centers = [n for n in topology.nodes if n.tier is not Tier.COUNTY]
    await asyncio.gather(*(_work(n, random.Random(rng.random()), stop, interval_s) for n in centers))
