"""Seeded, valid event logs of a town's cases, for replaying in any order.

Each case is taken in at a village (or the town), may be escalated, goes some way round the
closed loop — 退单, late closing, unsatisfied 回访 and 发回重办, 督办 when overdue — and stops
anywhere. Every event is checked by ``lifecycle.apply`` as it is made.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

from devtools.simulator import CaseFactory
from fengqiao.cases import lifecycle
from fengqiao.divisions import parent_code, tier_of
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2
from harness.county import small_county

DEPARTMENTS = ("司法所", "派出所", "市监所", "妇联", "自然资源所", "村调委会")
COUNTY = "371702"
TOWN = "371702101"
VILLAGES = ("371702101001", "371702101002", "371702101003")


class CaseLog:
    """One case's events, made step by step."""

    def __init__(self, rng: random.Random, origin: str, at: dt.datetime, request: pb.Case) -> None:
        self.rng, self.at, self.events = rng, at, []  # type: list[pb.CaseEvent]
        self.case_id = str(uuid.uuid4())
        intake = pb.Case()
        intake.CopyFrom(request)
        intake.origin_node = origin
        intake.receipt_no = f"{origin}-{uuid.uuid4().hex[:8]}"
        intake.clock_start.FromDatetime(at)
        intake.deadline.FromDatetime(at + dt.timedelta(hours=24))
        self.case: pb.Case | None = None
        self.add(origin, "received", pb.Received(case=intake), gap_h=0)

    def add(self, node: str, field: str, payload: object, *, gap_h: float | None = None) -> pb.Case:
        self.at += dt.timedelta(hours=self.rng.uniform(0.5, 6) if gap_h is None else gap_h)
        event = pb.CaseEvent(
            id=str(uuid.uuid4()), case_id=self.case_id, seq=len(self.events) + 1, node=node, actor="测试"
        )
        event.at.FromDatetime(self.at)
        getattr(event, field).CopyFrom(payload)
        self.case = lifecycle.apply(self.case, event)
        self.events.append(event)
        return self.case

    def deadline(self, hours: float) -> pb.Triaged:
        step = pb.Triaged(category=self.case.category if self.case else "", response_class=pb.RESPONSE_CLASS_ROUTINE)
        step.deadline.FromDatetime(self.at + dt.timedelta(hours=hours))
        return step


def _escalate(log: CaseLog, holder: str) -> str:
    above = parent_code(holder)
    assert above is not None
    log.add(
        holder, "escalation_requested", pb.EscalationRequested(to_node=above, reason="跨村纠纷", rule_id="operator")
    )
    accepted = pb.EscalationAccepted()
    accepted.deadline.FromDatetime(log.at + dt.timedelta(hours=50))
    log.add(above, "escalation_accepted", accepted, gap_h=1)
    return above


def _handle(log: CaseLog, holder: str) -> None:
    """Round the loop from where the case is; may stop anywhere."""
    rng = log.rng
    case = log.add(holder, "triaged", log.deadline(rng.choice((24, 48, 72))))
    rounds = 0
    while rounds < 2:
        rounds += 1
        slip = pb.AssignmentSlip(department=rng.choice(DEPARTMENTS), requirement="依法调处")
        log.add(holder, "assigned", pb.Assigned(slip=slip))
        if rng.random() < 0.15:
            log.add(holder, "returned", pb.Returned(reason="不属本部门职责"))
            slip = pb.AssignmentSlip(department=rng.choice(DEPARTMENTS), requirement="依法调处")
            log.add(holder, "assigned", pb.Assigned(slip=slip))
        if rng.random() < 0.1:
            return  # never acknowledged
        log.add(holder, "acknowledged", pb.Acknowledged(department=slip.department))
        log.add(holder, "started", pb.Started())
        if rng.random() < 0.12:
            case = log.case
            assert case is not None
            supervision = pb.Supervision(deadline=case.deadline, to_node=parent_code(holder) or holder)
            if holder != COUNTY:
                log.at = max(log.at, case.deadline.ToDatetime(tzinfo=dt.UTC)) + dt.timedelta(hours=1)
                log.add(holder, "supervision", supervision, gap_h=0)
            if rng.random() < 0.5:
                return  # still open, overdue
        if rng.random() < 0.1:
            return
        feedback = pb.FeedbackSlip(result="已调解", mediated=rng.random() < 0.9, mediation_level="网格员现场调解")
        log.add(holder, "feedback", pb.FeedbackGiven(slip=feedback), gap_h=rng.uniform(1, 40))
        log.add(holder, "reviewed", pb.Reviewed(approved=True))
        closed = pb.Closed(summary="已化解", resolved_tier=common_pb2.Tier.ValueType(tier_of(holder)))
        log.add(holder, "closed", closed)
        if rng.random() < 0.15:
            return  # not yet followed up
        score = rng.choices((5, 4, 3, 2, 1), weights=(60, 20, 8, 8, 4))[0]
        log.add(holder, "follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=score, method="电话回访")))
        if score <= lifecycle.UNSATISFIED_MAX:
            reopened = pb.Reopened(reason="回访不满意")
            reopened.deadline.FromDatetime(log.at + dt.timedelta(hours=48))
            log.add(holder, "reopened", reopened, gap_h=0)
            continue
        if rng.random() < 0.7:
            log.add(holder, "archived", pb.Archived())
        return


def make_logs(seed: int, *, start: dt.datetime, days: int, per_node: int, late: str = "") -> list[CaseLog]:
    """``per_node`` cases for each village and the town, received over ``days`` from ``start``;
    the cases of ``late`` (a village) fall in the last week of that span."""
    rng = random.Random(seed)
    factory = CaseFactory(rng=rng, topology=small_county(towns=1, villages=len(VILLAGES)))
    logs = []
    for origin in (*VILLAGES, TOWN):
        for _ in range(per_node):
            first = days - 7 if origin == late else 0
            at = start + dt.timedelta(days=rng.uniform(first, days - 2), seconds=rng.randint(0, 3600))
            request = factory.make(VILLAGES[0])
            case = pb.Case(
                division_code=origin, grid=request.grid, channel=request.channel, category=request.category,
                response_class=request.response_class, parties=request.parties, location=request.location,
                description=request.description, reporter=request.reporter,
            )  # fmt: skip
            log = CaseLog(rng, origin, at, case)
            holder = origin
            if rng.random() < 0.25:
                holder = _escalate(log, holder)
                if rng.random() < 0.3 and holder == TOWN:
                    holder = _escalate(log, holder)
            if rng.random() < 0.9:
                _handle(log, holder)
            logs.append(log)
    return logs
