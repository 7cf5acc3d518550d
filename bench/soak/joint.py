"""三联 joint cases under chaos: each town with neighbours opens joint cases with one or two of
them and carries each to its joint closing — answers, task force, tasks, notes, sign-offs.
The ledger records what was done; ``check_joint`` holds every copy against it.

A write whose outcome is unknown (a killed process, a cut link) is never blindly repeated. The
opening, notes, members and tasks carry a client request id (one per intended write, derived
from the record's request id), so the node adds each once and they are simply repeated
(``persist``); a re-read could not tell whether an attempt that timed out commits after it.
Answers, task completions and sign-offs, which a repeat would see refused, look for their effect
in the acting center's copy first (``write_once``). Every copy folds the timeline in one
(Lamport) order, so a step that needs earlier events waits until the acting center's copy holds
them (``converged``), never on wall-clock sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc

from bench.soak.calls import Nodes, persist
from bench.soak.workload import Job, guarded, run_spread, spread, until, write_once
from fengqiao.divisions import Tier
from fengqiao.topology import Topology
from fengqiao.v1 import common_pb2, federation_pb2
from fengqiao.v1 import routing_pb2 as pb

log = logging.getLogger(__name__)
Now = Callable[[], dt.datetime]

INVITED, ACCEPTED = pb.JOINT_PARTICIPANT_STATUS_INVITED, pb.JOINT_PARTICIPANT_STATUS_ACCEPTED
CLOSED = pb.JOINT_CASE_STATUS_CLOSED
TOPICS = (
    ("交界山林权属纠纷", "山林土地"),
    ("跨镇水渠用水纠纷", "邻里"),
    ("边界承包地界址纠纷", "山林土地"),
    ("交界养殖场污染纠纷", "环境污染"),
    ("跨镇务工人员欠薪纠纷", "劳动争议"),
)
UNITS = ("司法所", "派出所", "人民调解委员会", "农业农村办", "信访办")
SURNAMES = "王李张刘陈杨赵黄周吴"
NOTES = ("召集双方当事人面谈", "实地查看交界现场", "调取土地确权档案", "与村两委沟通情况", "拟定调解方案初稿")


# ---- the ledger ----------------------------------------------------------------------------


@dataclasses.dataclass
class JointRecord:
    """One joint case of the workload, as far as its driver got."""

    lead: str
    request_id: str
    title: str
    invited: list[str]
    id: str = ""  # empty until the opening is confirmed
    accepted: list[str] = dataclasses.field(default_factory=list)  # invited towns that accepted
    declined: dict[str, str] = dataclasses.field(default_factory=dict)  # invited town → reason
    notes: int = 0  # notes confirmed added
    notes_unsure: int = 0  # notes whose outcome is unknown (their driver was cancelled)
    events: int = 0  # timeline events confirmed: the whole timeline once closed
    closed: bool = False
    step: str = "scheduled"
    problem: str = ""


@dataclasses.dataclass
class JointLedger:
    """Every joint case the workload started."""

    cases: list[JointRecord] = dataclasses.field(default_factory=list)

    @property
    def opened(self) -> list[JointRecord]:
        return [c for c in self.cases if c.id]

    @property
    def unfinished(self) -> list[JointRecord]:
        return [c for c in self.cases if not c.closed]

    def counts(self) -> dict[str, int]:
        return {
            "started": len(self.cases),
            "opened": len(self.opened),
            "closed": sum(c.closed for c in self.cases),
            "unfinished": len(self.unfinished),
            "declined": sum(len(c.declined) for c in self.cases),
            "notes": sum(c.notes for c in self.cases),
            "events": sum(c.events for c in self.cases),
        }

    def summary(self) -> str:
        c = self.counts()
        return (
            f"{c['opened']} opened, {c['closed']} closed, {c['unfinished']} unfinished, "
            f"{c['declined']} invitations declined, {c['notes']} notes"
        )


# ---- the driver ----------------------------------------------------------------------------


def leading_towns(topology: Topology) -> list[str]:
    """Towns that have a neighbouring town to invite."""
    return [n.code for n in topology.nodes if n.tier is Tier.TOWN and n.neighbours]


async def run_joint_cases(
    nodes: Nodes,
    topology: Topology,
    *,
    per_town: int,
    rng: random.Random,
    stop: asyncio.Event,
    spread_s: float,
    now: Now,
    drain_s: float = 180.0,
    step_s: float = 300.0,
) -> JointLedger:
    """Each town with neighbours opens ``per_town`` joint cases spread over ``spread_s`` and
    carries each to its closing, all concurrently; after ``stop`` none are opened and those
    running get ``drain_s`` more. ``step_s`` bounds each step (a call, or a wait for a copy)."""
    ledger = JointLedger()
    jobs: list[Job] = []
    for lead in leading_towns(topology):
        for k, at in enumerate(spread(per_town, spread_s, rng)):
            case_rng = random.Random(rng.getrandbits(64))
            record = _plan(topology, lead, k, case_rng)
            run = _JointRun(nodes, topology, record, case_rng, now, step_s)
            jobs.append((at, _starter(ledger, record, run)))
    await run_spread(jobs, stop=stop, drain_s=drain_s)
    return ledger


def _starter(ledger: JointLedger, record: JointRecord, run: _JointRun) -> Callable[[], Coroutine[Any, Any, None]]:
    async def start() -> None:
        ledger.cases.append(record)
        await guarded(record, run)

    return start


def _plan(topology: Topology, lead: str, k: int, rng: random.Random) -> JointRecord:
    neighbours = list(topology.node(lead).neighbours)
    invited = rng.sample(neighbours, 2 if len(neighbours) >= 2 and rng.random() < 0.5 else 1)
    title, _category = rng.choice(TOPICS)
    request_id = f"soak-joint-{lead}-{k}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    return JointRecord(lead=lead, request_id=request_id, title=title, invited=invited)


class _JointRun:
    """The life of one joint case, step by step."""

    def __init__(
        self, nodes: Nodes, topology: Topology, record: JointRecord, rng: random.Random, now: Now, step_s: float
    ) -> None:
        self.nodes, self.topology, self.r, self.rng, self.now, self.step_s = nodes, topology, record, rng, now, step_s
        self.county = topology.county.code
        two = len(record.invited) == 2
        self.decliner = rng.choice(record.invited) if two and rng.random() < 0.4 else None

    async def __call__(self) -> None:
        r = self.r
        r.step = "open"
        _title, category = next(t for t in TOPICS if t[0] == r.title)
        request = pb.OpenJointCaseRequest(
            actor="牵头镇值班员", title=r.title, category=category, invited=r.invited, client_request_id=r.request_id,
            description=f"{r.title}：涉及相邻乡镇，启动三联联合调处（一案一专班）。",
        )  # fmt: skip
        opened = await persist(lambda: self.nodes.routing(r.lead).OpenJointCase(request), what=r.request_id)
        r.id, r.events = opened.id, 1
        r.step = "answer"
        await asyncio.gather(*(self._answer(town) for town in r.invited))
        towns = [r.lead, *r.accepted]
        r.step = "task force"
        await asyncio.gather(*(self._staff(town) for town in towns), self._notes(towns))
        r.step = "share tasks"
        await self._converged(towns)
        r.step = "complete tasks"
        await asyncio.gather(*(self._complete(town) for town in towns))
        r.step = "share timeline"
        await self._converged(towns)  # every sign-off then sorts after every other event
        r.step = "sign off"
        await asyncio.gather(*(self._sign(town) for town in towns))
        r.step = "close"
        await self._until(r.lead, lambda c: c.status == CLOSED, "closed at the lead")
        r.closed, r.step = True, "closed"

    async def _read(self, code: str) -> pb.JointCase | None:
        request = pb.GetJointCaseRequest(id=self.r.id)
        return await _get_joint(self.nodes, code, request, within_s=self.step_s)

    async def _until(self, code: str, ok: Callable[[pb.JointCase], bool], what: str) -> pb.JointCase:
        return await until(lambda: self._read(code), ok, what=f"{self.r.id} {what} at {code}", within_s=self.step_s)

    async def _write(
        self, code: str, call: Callable[[], Awaitable[pb.JointCase]], landed: Callable[[pb.JointCase], bool], what: str
    ) -> pb.JointCase:
        async def look() -> pb.JointCase | None:
            case = await self._read(code)
            return case if case is not None and landed(case) else None

        case = await write_once(call, look, what=f"{self.r.id} {what} at {code}", within_s=self.step_s)
        self.r.events += 1
        return case

    async def _add(self, code: str, call: Callable[[], Awaitable[pb.JointCase]], what: str) -> pb.JointCase:
        """A write carrying its client request id: repeated as is, the node adds it once."""
        case = await persist(call, what=f"{self.r.id} {what} at {code}", within_s=self.step_s)
        self.r.events += 1
        return case

    def _request_id(self, kind: str, code: str, index: int = 0) -> str:
        """The client request id of one intended write of this joint case."""
        return f"{self.r.request_id}:{kind}:{code}:{index}"

    async def _converged(self, towns: list[str]) -> None:
        want = self.r.events
        for town in towns:
            await self._until(town, lambda c: c.event_count >= want, f"all {want} events")

    async def _answer(self, town: str) -> None:
        r = self.r
        await self._until(town, lambda c: True, "the invitation")
        accept = town != self.decliner
        reason = "" if accept else "经研判该纠纷不涉及本镇辖区，不参与联合调处"
        request = pb.AnswerJointInvitationRequest(id=r.id, actor="受邀镇值班员", accept=accept, reason=reason)

        async def look() -> pb.JointCase | None:
            try:
                case = await self._read(town)
            except grpc.aio.AioRpcError as exc:  # a town that declined may no longer read the case
                if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                return pb.JointCase(id=r.id)
            return case if case is not None and _status(case, town) != INVITED else None

        call = self.nodes.routing(town).AnswerJointInvitation
        await write_once(lambda: call(request), look, what=f"{r.id} answer at {town}", within_s=self.step_s)
        r.events += 1
        if accept:
            r.accepted.append(town)
        else:
            r.declined[town] = reason

    async def _staff(self, town: str) -> None:
        """Members of the task force from ``town``, and the task it carries out."""
        for i, surname in enumerate(self.rng.sample(SURNAMES, self.rng.randint(1, 2))):
            member = pb.JointMember(
                name=f"{surname}{'组长' if i == 0 else '调解员'}", unit=self.rng.choice(UNITS),
                role="组长" if i == 0 else "成员", phone=f"138{self.rng.randrange(10**8):08d}",
            )  # fmt: skip
            await self._member(town, member, self._request_id("member", town, i))
        title = f"{self.r.title}：{self.topology.node(town).name}负责核实本镇一侧情况"
        stub = self.nodes.routing(town)
        days = self.rng.randint(60, 240)
        request_id = self._request_id("task", town)

        def add_task() -> Awaitable[pb.JointCase]:  # the deadline from the node's now, at each attempt
            request = pb.AddJointTaskRequest(
                id=self.r.id, actor="专班联络员", node=town, title=title, client_request_id=request_id
            )
            request.deadline.FromDatetime(self.now() + dt.timedelta(days=days))
            return stub.AddJointTask(request)

        await self._add(town, add_task, "task")

    async def _member(self, town: str, member: pb.JointMember, request_id: str) -> None:
        request = pb.AddJointMemberRequest(
            id=self.r.id, actor="专班联络员", member=member, client_request_id=request_id
        )
        await self._add(town, lambda: self.nodes.routing(town).AddJointMember(request), "member")

    async def _notes(self, towns: list[str]) -> None:
        """A few notes from different centers at once (the county now and then)."""
        writers = [*towns, self.county] if self.rng.random() < 0.5 else towns
        texts = [
            (writer, f"{self.rng.choice(NOTES)}（{writer}第{i + 1}条）")
            for writer in writers
            for i in range(self.rng.randint(1, 2))
        ]
        if self.county in writers:
            await self._until(self.county, lambda c: True, "the county's copy")
        await asyncio.gather(
            *(self._note(writer, text, self._request_id("note", writer, i)) for i, (writer, text) in enumerate(texts))
        )

    async def _note(self, writer: str, text: str, request_id: str) -> None:
        r = self.r
        request = pb.AddJointNoteRequest(id=r.id, actor="专班记录员", text=text, client_request_id=request_id)
        r.notes_unsure += 1  # until confirmed: a note given up on may have been added
        await self._add(writer, lambda: self.nodes.routing(writer).AddJointNote(request), "note")
        r.notes, r.notes_unsure = r.notes + 1, r.notes_unsure - 1

    async def _complete(self, town: str) -> None:
        case = await self._until(town, lambda c: True, "its tasks")
        for task in [t for t in case.tasks if t.node == town and not t.done]:
            await self._complete_task(town, task)

    async def _complete_task(self, town: str, task: pb.JointTask) -> None:
        request = pb.CompleteJointTaskRequest(
            id=self.r.id, actor="专班联络员", task_id=task.id, result="已核实并报专班"
        )
        await self._write(
            town,
            lambda: self.nodes.routing(town).CompleteJointTask(request),
            lambda c: any(t.title == task.title and t.done for t in c.tasks),
            f"task {task.id} done",
        )

    async def _sign(self, town: str) -> None:
        request = pb.SignOffJointCaseRequest(id=self.r.id, actor=f"{town}分管领导", comment="同意联合办结")
        await self._write(
            town,
            lambda: self.nodes.routing(town).SignOffJointCase(request),
            lambda c: any(p.node == town and p.signed_off for p in c.participants),
            "sign-off",
        )


def _status(case: pb.JointCase, town: str) -> int:
    return next((p.status for p in case.participants if p.node == town), pb.JOINT_PARTICIPANT_STATUS_UNSPECIFIED)


async def _get_joint(
    nodes: Nodes, code: str, request: pb.GetJointCaseRequest, *, within_s: float
) -> pb.JointCase | None:
    """A center's copy of a joint case, ``None`` when it holds none (yet)."""
    try:
        return await persist(
            lambda: nodes.routing(code).GetJointCase(request), what=f"read {request.id} at {code}", within_s=within_s
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


async def _get_timeline(nodes: Nodes, code: str, joint_id: str, *, within_s: float) -> pb.JointTimeline | None:
    request = pb.GetJointCaseRequest(id=joint_id)
    try:
        return await persist(
            lambda: nodes.routing(code).GetJointTimeline(request),
            what=f"timeline {joint_id} at {code}",
            within_s=within_s,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


# ---- the check -----------------------------------------------------------------------------


async def check_joint(nodes: Nodes, topology: Topology, ledger: JointLedger, *, settle_s: float = 60.0) -> list[str]:
    """Problems with the joint cases (empty when all is well): each ledger case closed at its
    lead, with one timeline (same hash) at the lead, every accepted town and the county, holding
    exactly the notes and events the ledger added, all applied; no joint case at a lead that the
    ledger does not know; the county's all-time figures equal to the ledger's. Replication may
    lag the end of the workload: the check is repeated for up to ``settle_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s
    while True:
        problems = await _joint_problems(nodes, topology, ledger)
        if not problems or loop.time() + 2.0 > deadline:
            return problems
        await asyncio.sleep(2.0)


async def _joint_problems(nodes: Nodes, topology: Topology, ledger: JointLedger) -> list[str]:
    problems: list[str] = []
    for record in ledger.cases:
        if record.problem or not record.closed:
            why = record.problem or record.step
            problems.append(f"joint case {record.id or record.request_id} ({record.lead}): unfinished, {why}")
        if record.id:
            problems += await _case_problems(nodes, topology.county.code, record)
    known = {c.id for c in ledger.opened}
    for town in leading_towns(topology):
        for case in await _led_by(nodes, town):
            if case.id not in known:
                problems.append(f"joint case {case.id} at {town}: not in the ledger (a duplicate from a retry?)")
    return problems + await _figure_problems(nodes, topology.county.code, ledger)


async def _case_problems(nodes: Nodes, county: str, record: JointRecord) -> list[str]:
    name = f"joint case {record.id} ({record.lead})"
    lead = await _get_joint(nodes, record.lead, pb.GetJointCaseRequest(id=record.id), within_s=30)
    if lead is None:
        return [f"{name}: missing at its lead"]
    problems = []
    if record.closed and lead.status != CLOSED:
        problems.append(f"{name}: {pb.JointCaseStatus.Name(lead.status)} at its lead, the ledger has it closed")
    accepted = sorted(p.node for p in lead.participants if p.status == ACCEPTED and p.node != record.lead)
    if accepted != sorted(record.accepted) and not record.problem:  # else an answer's outcome may be unknown
        problems.append(f"{name}: accepted by {accepted} at its lead, the ledger says {sorted(record.accepted)}")
    copies = [record.lead, *record.accepted, county]
    timelines = {code: await _get_timeline(nodes, code, record.id, within_s=30) for code in copies}
    hashes = {code: t.hash[:12] if t is not None else "missing" for code, t in timelines.items()}
    if len(set(hashes.values())) != 1:
        problems.append(f"{name}: timelines differ: {hashes}")
    timeline = timelines[record.lead]
    if timeline is not None:
        problems += _timeline_problems(name, record, timeline)
    return problems


def _timeline_problems(name: str, record: JointRecord, timeline: pb.JointTimeline) -> list[str]:
    problems = []
    notes = sum(e.event.WhichOneof("payload") == "note" for e in timeline.entries)
    if not record.notes <= notes <= record.notes + record.notes_unsure:
        problems.append(f"{name}: {notes} notes in the timeline, the ledger added {record.notes}")
    if record.closed and len(timeline.entries) != record.events:
        problems.append(f"{name}: {len(timeline.entries)} events in the timeline, the ledger has {record.events}")
    refused = [e.note for e in timeline.entries if not e.applied]
    if refused:
        problems.append(f"{name}: {len(refused)} events not applied: {refused[0]}")
    return problems


async def _led_by(nodes: Nodes, town: str) -> list[pb.JointCase]:
    """Every joint case ``town`` leads (from its own copies)."""
    found: list[pb.JointCase] = []
    token = ""
    while True:
        request = pb.ListJointCasesRequest(page=common_pb2.PageRequest(page_size=500, page_token=token))
        call = functools.partial(nodes.routing(town).ListJointCases, request)
        reply = await persist(call, what=f"list at {town}", within_s=30)
        found += [c for c in reply.joint_cases if c.lead_node == town]
        token = reply.page.next_page_token
        if not token:
            return found


async def _figure_problems(nodes: Nodes, county: str, ledger: JointLedger) -> list[str]:
    """The county's all-time figures count each joint case once (this workload being the only
    one that opens joint cases). Not compared when a case was left unfinished: whether its last
    step (opening, closing sign-off) took effect is unknown, and it is reported already."""
    if any(c.problem for c in ledger.cases):
        return []
    request = federation_pb2.GetNodeStatsRequest(code=county)  # empty period: all time
    stats = await persist(lambda: nodes.federation(county).GetNodeStats(request), what="county figures", within_s=30)
    counts = ledger.counts()
    got = (stats.joint_cases_opened, stats.joint_cases_closed)
    want = (counts["opened"], counts["closed"])
    return [] if got == want else [f"county figures: joint cases opened/closed {got}, the ledger {want}"]
