"""The soak's cases: taken in at the villages through the year and each driven round the
closed loop to 归档 by whichever center holds it, escalating where the containment policy
says so (小事不出村、大事不出镇). Every step survives chaos: a step whose outcome is unknown
is never repeated blindly; the case is read again and its status says what comes next."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable

import grpc

from bench.soak.calls import GaveUp, Nodes, persist
from devtools.robot import DEPARTMENTS, LEVEL
from devtools.simulator import CaseFactory
from fengqiao.divisions import Tier, tier_of
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, routing_pb2

log = logging.getLogger(__name__)
S = pb.CaseStatus
Step = Callable[[], Awaitable[pb.Case]]
WHO = "值班员"


@dataclasses.dataclass
class Facts:
    """What the center learns of a matter, fed to the containment policy at each tier."""

    people: int
    amount_yuan: int
    failed_mediations: int
    party_divisions: list[str]

    @classmethod
    def draw(cls, rng: random.Random, village: str, towns: list[str]) -> Facts:
        people = rng.choices((1, 2, 3, 4, 6, 12), weights=(45, 30, 10, 5, 7, 3))[0]
        amount = rng.choice((2_000, 8_000, 30_000, 60_000, 150_000)) if rng.random() < 0.3 else 0
        other = rng.choice([t for t in towns if t != village[:9]] or towns) + "001"
        spans = [village, other] if rng.random() < 0.02 else [village]
        return cls(people, amount, 2 if rng.random() < 0.03 else 0, spans)


@dataclasses.dataclass
class CaseLedger:
    """What the workload did, to be checked against every node's store afterwards."""

    requests: dict[str, intake_pb2.SubmitCaseRequest] = dataclasses.field(default_factory=dict)
    case_of: dict[str, str] = dataclasses.field(default_factory=dict)  # client_request_id → case id
    holder: dict[str, str] = dataclasses.field(default_factory=dict)  # case id → final holder
    archived: set[str] = dataclasses.field(default_factory=set)
    unfinished: dict[str, str] = dataclasses.field(default_factory=dict)  # case id or request → why
    steps: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    retried_unknown: int = 0  # steps whose outcome was unknown and were resolved by reading again

    @property
    def escalations(self) -> int:
        return self.steps["escalated"]


class CaseDriver:
    """Drives one case at a time from its status; many run concurrently."""

    def __init__(self, nodes: Nodes, ledger: CaseLedger, *, step_pause_s: float, within_s: float) -> None:
        self.nodes = nodes
        self.ledger = ledger
        self.step_pause_s = step_pause_s
        self.within_s = within_s

    async def submit(self, request: intake_pb2.SubmitCaseRequest) -> pb.Case:
        """Take the request in at its village; intake is idempotent by client_request_id."""
        village, rid = request.division_code, request.client_request_id
        self.ledger.requests[rid] = request
        reply = await persist(
            lambda: self.nodes.intake(village).SubmitCase(request), what=f"submit {rid}", within_s=self.within_s
        )
        self.ledger.case_of[rid] = reply.case.id
        return reply.case

    async def run(self, request: intake_pb2.SubmitCaseRequest, facts: Facts, rng: random.Random) -> None:
        rid = request.client_request_id
        try:
            case = await self.submit(request)
            await self.drive(case, facts, rng)
        except (GaveUp, grpc.aio.AioRpcError) as exc:
            key = self.ledger.case_of.get(rid, rid)
            why = f"{exc.code().name} {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) else f"GaveUp: {exc}"
            self.ledger.unfinished[key] = why
            log.warning("case %s unfinished: %s", key, why)

    async def drive(self, case: pb.Case, facts: Facts, rng: random.Random) -> None:
        here = case.holder_node
        flags: set[str] = set()
        stuck = 0  # refusals in a row after which the case read again had not moved on
        while case.status != S.CASE_STATUS_ARCHIVED:
            if case.status == S.CASE_STATUS_ESCALATING or case.holder_node != here:
                # on its way up, or already taken up (the copy here may show either)
                here = case.escalation_to if case.status == S.CASE_STATUS_ESCALATING else case.holder_node
                case = await self._arrival(case.id, here)
                continue
            await asyncio.sleep(rng.uniform(0, self.step_pause_s))
            name, call = self._next(case, here, facts, rng, flags)
            try:
                case = await persist(call, what=f"{name} {case.id}", within_s=self.within_s)
                self.ledger.steps[name] += 1
                stuck = 0
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                # refused as done: an attempt whose answer was lost did commit, so read where
                # the case is. Under chaos many steps in a row may each lose their answer; only
                # refusals that the case does not move on from count towards giving up.
                self.ledger.retried_unknown += 1
                before = (case.status, case.version)
                case = await self._read(case.id, here)
                if case.status != before[0]:
                    stuck = 0
                    continue
                stuck += 1
                log.warning(
                    "%s of %s at %s refused (%s), yet read again it is still %s; log there: %s",
                    name, case.id, here, exc.details(), before, await self._log(case.id, here),
                )  # fmt: skip
                if stuck > 3:
                    raise
        self.ledger.holder[case.id] = here
        self.ledger.archived.add(case.id)

    async def _read(self, case_id: str, at: str) -> pb.Case:
        request = intake_pb2.GetCaseRequest(id=case_id)
        return await persist(
            lambda: self.nodes.intake(at).GetCase(request), what=f"read {case_id}", within_s=self.within_s
        )

    async def _log(self, case_id: str, at: str) -> str:
        """The case's event log at ``at``, one ``seq:type@node`` per event (for diagnosis)."""
        request = intake_pb2.ListCaseEventsRequest(case_id=case_id)
        reply = await persist(
            lambda: self.nodes.intake(at).ListCaseEvents(request), what=f"log {case_id}", within_s=self.within_s
        )
        return " ".join(f"{e.seq}:{e.WhichOneof('payload')}@{e.node}" for e in reply.events)

    async def _arrival(self, case_id: str, at: str) -> pb.Case:
        """The case once the tier above holds it (its escalation travels the bus)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.within_s
        while loop.time() < deadline:
            try:
                case = await self._read(case_id, at)
                if case.holder_node == at and case.status != S.CASE_STATUS_ESCALATING:
                    return case
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.2)
        raise GaveUp(f"case {case_id} did not arrive at {at} within {self.within_s:.0f} s")

    def _next(self, case: pb.Case, here: str, facts: Facts, rng: random.Random, flags: set[str]) -> tuple[str, Step]:
        """The next step's name and a call making it, from the case's status."""
        intake, cid = self.nodes.intake(here), case.id
        dept = DEPARTMENTS.get(case.category, "综治中心")
        status = case.status
        if status == S.CASE_STATUS_RECEIVED and tier_of(here) is not Tier.COUNTY and f"policy@{here}" not in flags:
            flags.add(f"policy@{here}")
            return "policy", self._policy(cid, here, facts)
        if status == S.CASE_STATUS_RECEIVED:
            step = pb.Triaged(category=case.category, response_class=case.response_class)
            return "triage", lambda: intake.Triage(intake_pb2.TriageRequest(case_id=cid, actor=WHO, step=step))
        if status in (S.CASE_STATUS_TRIAGED, S.CASE_STATUS_RETURNED, S.CASE_STATUS_REOPENED):
            slip = pb.AssignmentSlip(department=dept, requirement="依法依规调处，按时反馈")
            assign = intake_pb2.AssignRequest(case_id=cid, actor=WHO, step=pb.Assigned(slip=slip))
            return "assign", lambda: intake.Assign(assign)
        if status == S.CASE_STATUS_ASSIGNED and "returned" not in flags and rng.random() < 0.08:
            flags.add("returned")
            back = intake_pb2.ReturnRequest(case_id=cid, actor=dept, step=pb.Returned(reason="不属本部门职责"))
            return "return", lambda: intake.Return(back)
        if status == S.CASE_STATUS_ASSIGNED:
            return "acknowledge", lambda: intake.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=cid, actor=dept))
        if status == S.CASE_STATUS_ACKNOWLEDGED:
            return "start", lambda: intake.Start(intake_pb2.StartRequest(case_id=cid, actor=dept))
        if status == S.CASE_STATUS_IN_PROGRESS:
            level = LEVEL[tier_of(here)]
            result = pb.FeedbackSlip(result="已调解，双方达成一致", mediated=rng.random() < 0.95, mediation_level=level)
            give = intake_pb2.SubmitFeedbackRequest(case_id=cid, actor=dept, step=pb.FeedbackGiven(slip=result))
            return "feedback", lambda: intake.SubmitFeedback(give)
        if status == S.CASE_STATUS_FEEDBACK:
            rework = "rework" not in flags and rng.random() < 0.08
            flags.add("rework")
            opinion = pb.Reviewed(approved=not rework, opinion="缺少当事人签字" if rework else "")
            review = intake_pb2.ReviewRequest(case_id=cid, actor=WHO, step=opinion)
            return "review", lambda: intake.Review(review)
        if status == S.CASE_STATUS_REVIEWED:
            close = intake_pb2.CloseRequest(case_id=cid, actor=WHO, step=pb.Closed(summary="已化解"))
            return "close", lambda: intake.Close(close)
        if status == S.CASE_STATUS_CLOSED:
            unhappy = "reopened" not in flags and rng.random() < 0.04
            flags.add("reopened")
            score = 2 if unhappy else rng.choices((5, 4, 3), weights=(75, 20, 5))[0]
            slip_e = pb.EvaluationSlip(satisfaction=score, method="电话回访")
            follow = intake_pb2.FollowUpRequest(case_id=cid, actor=WHO, step=pb.FollowedUp(slip=slip_e))
            return "follow_up", lambda: intake.FollowUp(follow)
        if status == S.CASE_STATUS_FOLLOWED_UP:
            return "archive", lambda: intake.Archive(intake_pb2.ArchiveRequest(case_id=cid, actor=WHO))
        raise GaveUp(f"case {cid} at {here} in unexpected status {S.Name(status)}")

    def _policy(self, cid: str, here: str, facts: Facts) -> Step:
        routing = self.nodes.routing(here)
        request = routing_pb2.ApplyPolicyRequest(
            case_id=cid,
            actor=WHO,
            people=facts.people,
            amount_yuan=facts.amount_yuan,
            failed_mediations=facts.failed_mediations if tier_of(here) is Tier.TOWN else 0,
            party_divisions=facts.party_divisions,
        )

        async def apply() -> pb.Case:
            decision = await routing.ApplyPolicy(request)
            if decision.escalate:
                self.ledger.steps["escalated"] += 1
            return await self.nodes.intake(here).GetCase(intake_pb2.GetCaseRequest(id=cid))

        return apply


async def run_cases(
    nodes: Nodes,
    topology: Topology,
    *,
    total: int,
    spread_s: float,
    rng: random.Random,
    stop: asyncio.Event,
    drain_s: float,
    step_pause_s: float = 0.5,
    in_flight: int = 200,
) -> CaseLedger:
    """Take ``total`` cases in at random villages, evenly over ``spread_s`` seconds, each driven
    to 归档 — but never more than ``in_flight`` under way at once, so a county slower than the
    pace takes in fewer (the throughput reached says how many) instead of drowning; stops
    taking new ones when ``stop`` is set, then lets those under way finish for up to ``drain_s``."""
    ledger = CaseLedger()
    villages = [n.code for n in topology.nodes if n.tier is Tier.VILLAGE]
    towns = [n.code for n in topology.nodes if n.tier is Tier.TOWN]
    factory = CaseFactory(rng=rng, topology=topology)
    # a case waits out any outage while the run lasts; only the end of the drain stops it
    driver = CaseDriver(nodes, ledger, step_pause_s=step_pause_s, within_s=spread_s + drain_s)
    tasks: set[asyncio.Task[None]] = set()
    room = asyncio.Semaphore(in_flight)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    for n in range(total):
        due = begun + spread_s * (n + rng.random()) / total
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - loop.time()))
            break
        except TimeoutError:
            pass
        if not await _room_before(room, stop):
            break
        village = rng.choice(villages)
        facts = Facts.draw(rng, village, towns)
        task = asyncio.create_task(driver.run(factory.make(village), facts, random.Random(rng.random())))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda _: room.release())
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for rid, request in ledger.requests.items():
        cid = ledger.case_of.get(rid)
        if cid is None:
            ledger.unfinished.setdefault(rid, f"never accepted at {request.division_code}")
        elif cid not in ledger.archived:
            ledger.unfinished.setdefault(cid, "not archived when the drain ended")
    return ledger


async def _room_before(room: asyncio.Semaphore, stop: asyncio.Event) -> bool:
    """Wait for a free place; False when ``stop`` came first."""
    acquire = asyncio.ensure_future(room.acquire())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if acquire.done():
        return True
    acquire.cancel()
    return False
