"""四必评 projects under chaos: each town (and the county) registers projects and takes each
through 立项 → 决策 → 实施 → 验收 with complete assessments; about one in five is first assessed
high at some gate (suspended) and passes on reassessment; medium ones set measures that get
completed; every hazard (risk point) gets resolved. ``check_projects`` holds the centers, the
county's copies and the county's figures against the ledger.

Only the registering center advances a project, one step at a time, so a step whose outcome
is unknown has landed exactly when the project's version went up (``write_once``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc

from bench.soak.calls import Nodes, persist
from bench.soak.joint import Now
from bench.soak.workload import Job, guarded, run_spread, spread, write_once
from fengqiao.divisions import Tier
from fengqiao.topology import Topology
from fengqiao.v1 import assessment_pb2 as pb
from fengqiao.v1 import common_pb2, federation_pb2

STAGES = ("立项", "决策", "实施", "验收")
PROJECTS = (
    ("产业园区一期征地", "征地"),
    ("旧村改造拆迁安置", "拆迁"),
    ("特色农业产业园建设", "产业园区"),
    ("农村人居环境整治新规", "政策调整"),
    ("垃圾中转站选址", "其它"),
)
RISKS = ("补偿标准争议", "施工扰民", "失地农民就业", "信访苗头", "环境影响担忧", "集体收益分配分歧")
UNITS = ("镇征迁办", "镇司法所", "镇信访办", "县自然资源局", "村两委")


@dataclasses.dataclass
class ProjectEntry:
    """One project of the workload, as far as its driver got."""

    center: str
    request_id: str
    name: str
    kind: str
    villages: list[str]
    high_at: str  # the gate first assessed high ("" for none)
    id: str = ""  # empty until the registration is confirmed
    events: int = 0  # the project's events confirmed: its version
    assessments: int = 0  # reassessments included
    blocked: bool = False  # a high-risk assessment suspended it
    hazards: set[str] = dataclasses.field(default_factory=set)
    resolved: set[str] = dataclasses.field(default_factory=set)
    measures: set[str] = dataclasses.field(default_factory=set)
    measures_done: set[str] = dataclasses.field(default_factory=set)
    completed: bool = False
    step: str = "scheduled"
    problem: str = ""


@dataclasses.dataclass
class ProjectLedger:
    """Every project the workload started."""

    projects: list[ProjectEntry] = dataclasses.field(default_factory=list)

    @property
    def registered(self) -> list[ProjectEntry]:
        return [p for p in self.projects if p.id]

    @property
    def unfinished(self) -> list[ProjectEntry]:
        return [p for p in self.projects if not p.completed]

    def counts(self) -> dict[str, int]:
        return {
            "started": len(self.projects),
            "registered": len(self.registered),
            "completed": sum(p.completed for p in self.projects),
            "unfinished": len(self.unfinished),
            "blocked": sum(p.blocked for p in self.projects),
            "assessments": sum(p.assessments for p in self.projects),
            "hazards_found": sum(len(p.hazards) for p in self.projects),
            "hazards_resolved": sum(len(p.resolved) for p in self.projects),
            "measures": sum(len(p.measures) for p in self.projects),
        }

    def summary(self) -> str:
        c = self.counts()
        return (
            f"{c['registered']} registered, {c['completed']} completed, {c['unfinished']} unfinished, "
            f"{c['blocked']} suspended at high risk, {c['assessments']} assessments, {c['hazards_found']} hazards"
        )


async def run_projects(
    nodes: Nodes,
    topology: Topology,
    *,
    per_town: int,
    rng: random.Random,
    stop: asyncio.Event,
    spread_s: float,
    now: Now,
    county_projects: int | None = None,
    drain_s: float = 180.0,
    step_s: float = 300.0,
) -> ProjectLedger:
    """Each town with villages registers ``per_town`` projects spread over ``spread_s`` (the
    county ``county_projects``, by default half as many, at least one) and takes each through
    the four gates, all concurrently; after ``stop`` none are registered and those running get
    ``drain_s`` more. ``step_s`` bounds each step."""
    ledger = ProjectLedger()
    county = topology.county.code
    villages = {n.code: [c.code for c in topology.children(n.code)] for n in topology.nodes if n.tier is Tier.TOWN}
    villages[county] = [n.code for n in topology.nodes if n.tier is Tier.VILLAGE]
    counts = {town: per_town for town, own in villages.items() if own and town != county}
    counts[county] = max(1, per_town // 2) if county_projects is None else county_projects
    jobs: list[Job] = []
    for center, count in counts.items():
        for k, at in enumerate(spread(count, spread_s, rng)):
            project_rng = random.Random(rng.getrandbits(64))
            entry = _plan(center, k, villages[center], project_rng)
            run = _ProjectRun(nodes, entry, project_rng, now, step_s)
            jobs.append((at, _starter(ledger, entry, run)))
    await run_spread(jobs, stop=stop, drain_s=drain_s)
    return ledger


def _starter(ledger: ProjectLedger, entry: ProjectEntry, run: _ProjectRun) -> Callable[[], Coroutine[Any, Any, None]]:
    async def start() -> None:
        ledger.projects.append(entry)
        await guarded(entry, run)

    return start


def _plan(center: str, k: int, villages: list[str], rng: random.Random) -> ProjectEntry:
    name, kind = rng.choice(PROJECTS)
    return ProjectEntry(
        center=center,
        request_id=f"soak-project-{center}-{k}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
        name=f"{name}（第{k + 1}批）",
        kind=kind,
        villages=rng.sample(villages, min(len(villages), rng.randint(1, 2))),
        high_at=rng.choice(STAGES) if rng.random() < 0.2 else "",
    )


class _ProjectRun:
    """The life of one project, gate by gate."""

    def __init__(self, nodes: Nodes, entry: ProjectEntry, rng: random.Random, now: Now, step_s: float) -> None:
        self.nodes, self.e, self.rng, self.now, self.step_s = nodes, entry, rng, now, step_s
        self.stub = nodes.assessment(entry.center)
        self.project = pb.Project()

    async def __call__(self) -> None:
        e = self.e
        e.step = "register"
        request = pb.RegisterProjectRequest(
            name=e.name, kind=e.kind, villages=e.villages, people_affected=self.rng.randint(50, 3000),
            description=f"{e.name}：涉及群众切身利益，须开展社会稳定风险评估。", actor="项目登记员",
            client_request_id=e.request_id,
        )  # fmt: skip
        self.project = await persist(lambda: self.stub.RegisterProject(request), what=e.request_id)
        e.id, e.events = self.project.id, 1
        for stage in STAGES:
            await self._gate(stage)
        e.completed = self.project.status == "completed"
        e.step = "completed" if e.completed else f"ended {self.project.status}"

    async def _gate(self, stage: str) -> None:
        e = self.e
        if stage == e.high_at:
            e.step = f"assess {stage} high"
            await self._assess(stage, self._filed("high", stage))
            e.blocked = True
        e.step = f"assess {stage}"
        await self._assess(stage, self._filed("medium" if self.rng.random() < 0.35 else "low", stage))
        e.step = f"pass {stage}"
        passing = pb.PassGateRequest(project_id=e.id, stage=stage, actor="项目负责人")
        await self._advance(lambda: self.stub.PassGate(passing), f"pass {stage}")
        e.step = f"measures and hazards {stage}"
        for measure in [m for m in self.project.measures if not m.completed]:
            await self._complete_measure(measure.id)
        for hazard in [h for h in self.project.hazards if not h.resolved]:
            await self._resolve_hazard(hazard.id)

    async def _read(self) -> pb.Project:
        request = pb.GetProjectRequest(id=self.e.id)
        return await persist(lambda: self.stub.GetProject(request), what=f"read {self.e.id}", within_s=self.step_s)

    async def _advance(self, call: Callable[[], Awaitable[pb.Project]], what: str) -> pb.Project:
        """One step of the project, which has landed when the project's version went up."""
        version = self.project.version

        async def landed() -> pb.Project | None:
            found = await self._read()
            return found if found.version > version else None

        self.project = await write_once(call, landed, what=f"{self.e.id} {what}", within_s=self.step_s)
        self.e.events += 1
        return self.project

    async def _assess(self, stage: str, filed: pb.GateAssessment) -> None:
        request = pb.AssessGateRequest(
            project_id=self.e.id, stage=stage, assessment=filed, actor="县社会稳定风险评估中心"
        )

        async def assess() -> pb.Project:
            return (await self.stub.AssessGate(request)).project

        project = await self._advance(assess, f"assess {stage}")
        self.e.assessments += 1
        self.e.hazards.update(h.id for h in project.hazards)
        self.e.measures.update(m.id for m in project.measures)

    async def _complete_measure(self, measure_id: str) -> None:
        request = pb.CompleteMeasureRequest(
            project_id=self.e.id, measure_id=measure_id, note="已落实", actor="责任单位"
        )
        await self._advance(lambda: self.stub.CompleteMeasure(request), f"measure {measure_id}")
        self.e.measures_done.add(measure_id)

    async def _resolve_hazard(self, hazard_id: str) -> None:
        request = pb.ResolveHazardRequest(
            project_id=self.e.id, hazard_id=hazard_id, resolution="经入户解释和协商，群众诉求已化解", actor="镇综治中心"
        )
        await self._advance(lambda: self.stub.ResolveHazard(request), f"hazard {hazard_id}")
        self.e.resolved.add(hazard_id)

    def _filed(self, level: str, stage: str) -> pb.GateAssessment:
        """A complete assessment the county's default rule rates ``level``. Open hazards (left
        by a high-risk assessment) are reassessed lower under the same description, so they
        stay the same hazards."""
        rng = self.rng
        respondents = rng.randint(60, 300)
        rate = {"high": 0.5, "medium": 0.7, "low": 0.9}[level]  # support rate: < 0.6 high, < 0.8 medium
        points = [pb.RiskPoint(description=h.description, likelihood=1, impact=3) for h in self._open_hazards()]
        if level == "high":
            points.append(pb.RiskPoint(description=f"{stage}：{rng.choice(RISKS)}（高）", likelihood=4, impact=4))
        elif rng.random() < 0.6:
            points.append(
                pb.RiskPoint(description=f"{stage}：{rng.choice(RISKS)}", likelihood=2, impact=rng.randint(1, 3))
            )
        filed = pb.GateAssessment(
            dimensions=pb.Dimensions(
                legality=rng.randint(85, 98), reasonableness=rng.randint(80, 95),
                feasibility=rng.randint(80, 95), controllability=rng.randint(78, 95),
            ),
            survey=pb.Survey(respondents=respondents, supporters=int(respondents * rate)),
            risk_points=points, assessor="县社会稳定风险评估中心", summary=f"{stage}环节稳定风险评估",
        )  # fmt: skip
        if level == "medium":
            for _ in range(rng.randint(1, 2)):
                measure = filed.measures.add(
                    description="逐户解释政策、公开补偿标准", responsible_unit=rng.choice(UNITS)
                )
                measure.deadline.FromDatetime(self.now() + dt.timedelta(days=rng.randint(30, 120)))
        return filed

    def _open_hazards(self) -> list[pb.Hazard]:
        return [h for h in self.project.hazards if not h.resolved]


# ---- the check -----------------------------------------------------------------------------


async def check_projects(
    nodes: Nodes, topology: Topology, ledger: ProjectLedger, *, settle_s: float = 60.0
) -> list[str]:
    """Problems with the projects (empty when all is well): each ledger project completed at its
    center — four gates passed, hazards resolved, measures completed, exactly the ledger's
    events and assessments — and the county's copy at the same version, stage and status; no
    project at a center that the ledger does not know; the county's all-time 四必评 figures equal
    to the ledger's sums. Replication may lag: the check is repeated for up to ``settle_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s
    while True:
        problems = await _project_problems(nodes, topology, ledger)
        if not problems or loop.time() + 2.0 > deadline:
            return problems
        await asyncio.sleep(2.0)


async def _project_problems(nodes: Nodes, topology: Topology, ledger: ProjectLedger) -> list[str]:
    county = topology.county.code
    problems: list[str] = []
    for entry in ledger.projects:
        if entry.problem or not entry.completed:
            why = entry.problem or entry.step
            problems.append(f"project {entry.id or entry.request_id} ({entry.center}): unfinished, {why}")
        if entry.id:
            problems += await _entry_problems(nodes, county, entry)
    known = {p.id for p in ledger.registered}
    centers = [n.code for n in topology.nodes if n.tier is not Tier.VILLAGE]
    for center in centers:
        for project in await _registered_at(nodes, center):
            if project.id not in known:
                problems.append(f"project {project.id} at {center}: not in the ledger (a duplicate from a retry?)")
    return problems + await _figure_problems(nodes, county, ledger)


async def _entry_problems(nodes: Nodes, county: str, entry: ProjectEntry) -> list[str]:
    name = f"project {entry.id} ({entry.center})"
    at = await _get_project(nodes, entry.center, entry.id)
    if at is None:
        return [f"{name}: missing at its center"]
    problems = []
    if entry.completed:
        gates = [g.status for g in at.gates]
        if (at.status, at.stage, gates) != ("completed", STAGES[-1], ["passed"] * 4):
            problems.append(f"{name}: {at.status} at {at.stage} with gates {gates} at its center")
        if at.version != entry.events:
            problems.append(f"{name}: {at.version} events at its center, the ledger has {entry.events}")
    if not entry.problem:  # else its last step's outcome is unknown to the ledger
        problems += _tally_problems(name, entry, at)
    if entry.center != county:
        copy = await _get_project(nodes, county, entry.id)
        mine, theirs = (at.version, at.stage, at.status), copy and (copy.version, copy.stage, copy.status)
        if mine != theirs:
            problems.append(f"{name}: the county's copy is {theirs or 'missing'}, its center's {mine}")
    return problems


def _tally_problems(name: str, entry: ProjectEntry, at: pb.Project) -> list[str]:
    problems = []
    assessed = sum(g.assessments for g in at.gates)
    if assessed != entry.assessments:
        problems.append(f"{name}: {assessed} assessments at its center, the ledger filed {entry.assessments}")
    if {h.id for h in at.hazards if h.resolved} != entry.resolved or {h.id for h in at.hazards} != entry.hazards:
        problems.append(f"{name}: hazards at its center differ from the ledger's")
    if {m.id for m in at.measures if m.completed} != entry.measures_done:
        problems.append(f"{name}: completed measures at its center differ from the ledger's")
    return problems


async def _get_project(nodes: Nodes, code: str, project_id: str) -> pb.Project | None:
    request = pb.GetProjectRequest(id=project_id)
    try:
        return await persist(
            lambda: nodes.assessment(code).GetProject(request), what=f"read {project_id} at {code}", within_s=30
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


async def _registered_at(nodes: Nodes, center: str) -> list[pb.Project]:
    """Every project ``center`` registered itself."""
    found: list[pb.Project] = []
    token = ""
    while True:
        request = pb.ListProjectsRequest(within=center, page=common_pb2.PageRequest(page_size=500, page_token=token))
        call = functools.partial(nodes.assessment(center).ListProjects, request)
        reply = await persist(call, what=f"projects at {center}", within_s=30)
        found += [p for p in reply.projects if p.node == center]
        token = reply.page.next_page_token
        if not token:
            return found


async def _figure_problems(nodes: Nodes, county: str, ledger: ProjectLedger) -> list[str]:
    """The county's 四必评 figures against the ledger (this workload being the only one with
    projects). They are period-bound by when each assessment was filed and each hazard found or
    resolved (on the nodes' accelerated clock); the empty period — all time — takes every one,
    so they compare with the ledger's plain sums. Not compared when a project was left
    unfinished: its last step's effect is unknown, and it is reported already."""
    if any(p.problem for p in ledger.projects):
        return []
    request = federation_pb2.GetNodeStatsRequest(code=county)
    stats = await persist(lambda: nodes.federation(county).GetNodeStats(request), what="county figures", within_s=30)
    c = ledger.counts()
    got = (stats.assessments_done, stats.hazards_found, stats.hazards_resolved, stats.projects_blocked)
    want = (c["assessments"], c["hazards_found"], c["hazards_resolved"], c["blocked"])
    if got == want:
        return []
    return [f"county figures: assessments/hazards found/resolved/projects blocked {got}, the ledger {want}"]
