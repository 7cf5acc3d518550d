"""Drive real cases round the loop at the villages and towns of a running sample county."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time

import grpc

from fengqiao.clock import CHINA_TZ
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty, submit_request

COUNTY = "371702"
VILLAGES = ("371702101001", "371702101002", "371702102001", "371702102002")


@dataclasses.dataclass
class Driven:
    """What was done: case id → the node holding it last, and the requests sent (with PII)."""

    holders: dict[str, str] = dataclasses.field(default_factory=dict)
    requests: list[intake_pb2.SubmitCaseRequest] = dataclasses.field(default_factory=list)


def this_month() -> str:
    return f"{dt.datetime.now(CHINA_TZ):%Y-%m}"


async def walk(api: intake_pb2_grpc.IntakeAsyncStub, case_id: str, *, department: str, score: int, stop: str) -> None:
    """Triage, assign, … up to ``stop`` (one of assigned, closed, followed, archived)."""
    who = "值班员"
    await api.Triage(
        intake_pb2.TriageRequest(case_id=case_id, actor=who, step=pb.Triaged(category="邻里", response_class=1))
    )
    slip = pb.AssignmentSlip(department=department, requirement="依法调处")
    await api.Assign(intake_pb2.AssignRequest(case_id=case_id, actor=who, step=pb.Assigned(slip=slip)))
    if stop == "assigned":
        return
    await api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=case_id, actor=department))
    await api.Start(intake_pb2.StartRequest(case_id=case_id, actor=department))
    feedback = pb.FeedbackSlip(result="已调解", mediated=True, mediation_level="网格员现场调解")
    await api.SubmitFeedback(
        intake_pb2.SubmitFeedbackRequest(case_id=case_id, actor=department, step=pb.FeedbackGiven(slip=feedback))
    )
    await api.Review(intake_pb2.ReviewRequest(case_id=case_id, actor=who, step=pb.Reviewed(approved=True)))
    await api.Close(intake_pb2.CloseRequest(case_id=case_id, actor=who, step=pb.Closed(summary="已化解")))
    if stop == "closed":
        return
    slip_e = pb.EvaluationSlip(satisfaction=score, method="电话回访")
    await api.FollowUp(intake_pb2.FollowUpRequest(case_id=case_id, actor=who, step=pb.FollowedUp(slip=slip_e)))
    if stop == "archived":
        await api.Archive(intake_pb2.ArchiveRequest(case_id=case_id, actor=who))


async def held_at(address: str, case_id: str, holder: str, *, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    async with channel(address) as ch:
        api = intake_pb2_grpc.IntakeStub(ch)
        while time.monotonic() < deadline:
            try:
                case = await api.GetCase(intake_pb2.GetCaseRequest(id=case_id))
                if case.holder_node == holder and case.status == pb.CASE_STATUS_RECEIVED:
                    return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"case {case_id} not held by {holder} within {within_s} s")


async def drive(county: LocalCounty) -> Driven:
    """Three cases at each village (archived, followed up, left assigned) and one per town
    escalated from a village and closed at the town."""
    done = Driven()
    stops = (("archived", 5, "司法所"), ("followed", 4, "派出所"), ("assigned", 0, "妇联"))
    for village in VILLAGES:
        async with channel(county[village].grpc_address) as ch:
            api = intake_pb2_grpc.IntakeStub(ch)
            for stop, score, department in stops:
                request = submit_request(village)
                case = (await api.SubmitCase(request)).case
                done.requests.append(request)
                await walk(api, case.id, department=department, score=score, stop=stop)
                done.holders[case.id] = village
            if village.endswith("001"):
                request = submit_request(village, category="山林土地", channel="群众来访")
                case = (await api.SubmitCase(request)).case
                done.requests.append(request)
                escalate = routing_pb2.EscalateRequest(case_id=case.id, actor="值班员", reason="涉及两村山林界址")
                await routing_pb2_grpc.RoutingStub(ch).Escalate(escalate)
                town = village[:9]
                await held_at(county[town].grpc_address, case.id, town)
                async with channel(county[town].grpc_address) as town_ch:
                    await walk(
                        intake_pb2_grpc.IntakeStub(town_ch), case.id, department="自然资源所", score=5, stop="closed"
                    )
                done.holders[case.id] = town
    return done


async def county_has_everything(
    county: LocalCounty, driven: Driven, *, within_s: float = 20
) -> dict[str, list[pb.CaseEvent]]:
    """Wait until the county holds every event each case's holder has; return the county's logs."""
    deadline = time.monotonic() + within_s
    async with channel(county[COUNTY].grpc_address) as ch:
        at_county = intake_pb2_grpc.IntakeStub(ch)
        while True:
            logs: dict[str, list[pb.CaseEvent]] = {}
            complete = True
            for case_id, holder in driven.holders.items():
                async with channel(county[holder].grpc_address) as hch:
                    want = await intake_pb2_grpc.IntakeStub(hch).GetCase(intake_pb2.GetCaseRequest(id=case_id))
                try:
                    reply = await at_county.ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=case_id))
                except grpc.aio.AioRpcError:
                    complete = False
                    break
                logs[case_id] = list(reply.events)
                complete = complete and len(reply.events) == want.version
            if complete:
                return logs
            if time.monotonic() > deadline:
                raise AssertionError("the county did not receive every event in time")
            await asyncio.sleep(0.1)
