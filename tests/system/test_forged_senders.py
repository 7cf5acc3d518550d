"""A village that publishes, on its own permitted subjects, events forged as its sibling, its town
or the county — or as itself where it may not write — changes nothing anywhere: each is a dead
letter ``伪造或越权：…`` naming the claimed and the actual sender, counted in the node's figures;
the genuine cases go on without a fork or a second holder. And a village whose own stream captures
a sibling's subjects cannot pass its events off as the sibling's across the leaf link.

One county (real nats-servers, one per node, leaf-linked; real gRPC) for every forged kind."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from google.protobuf.message import DecodeError, Message
from sqlmodel import Session, select

from fengqiao import gauges
from fengqiao.bus import MSG_ID
from fengqiao.cases import store as casestore
from fengqiao.db import Database
from fengqiao.divisions import event_subject, events_stream, own_up_subjects, subtree_subjects
from fengqiao.grpcutil import channel
from fengqiao.models import DeadLetter
from fengqiao.topology import NodeSpec, Topology
from fengqiao.v1 import assessment_pb2, assessment_pb2_grpc, case_pb2, routing_pb2, routing_pb2_grpc
from harness.county import LeafCounty
from services.assessment import store as projectstore
from services.routing.directives import store as directivestore
from services.routing.joint import store as jointstore
from tests.system.leaf_support import node_links, submit
from tests.system.test_county_sync import eventually

COUNTY, TOWN, OTHER_TOWN = "371702", "371702101", "371702102"
VILLAGE, SIBLING = f"{TOWN}001", f"{TOWN}002"
WITHIN_S = 30.0  # generous: the machine is shared


def topology() -> Topology:
    """The county, a town with the attacking village and its sibling, and a neighbouring town (三联)."""
    return Topology(
        name="测试县（样例）",
        nodes=(
            NodeSpec(code=COUNTY, name="测试县综治中心"),
            NodeSpec(code=TOWN, name="测试1镇综治中心", neighbours=(OTHER_TOWN,)),
            NodeSpec(code=VILLAGE, name="测试1镇1村综治站"),
            NodeSpec(code=SIBLING, name="测试1镇2村综治站"),
            NodeSpec(code=OTHER_TOWN, name="测试2镇综治中心", neighbours=(TOWN,)),
        ),
        sample_codes=True,
    )


@contextlib.asynccontextmanager
async def tls_county(tmp_path: Path) -> AsyncIterator[LeafCounty]:
    """Every leaf link mTLS, each child its own user allowed only its subtree (as deployed)."""
    local = await LeafCounty.create(
        topology(), tmp_path / "county", lambda code: f"sqlite:///{tmp_path / f'{code}.db'}", tls=True
    )
    try:
        await local.start()
        yield local
    finally:
        await local.close()


def db(local: LeafCounty, code: str) -> Database:
    return local[code].ctx.db  # type: ignore[union-attr]


async def read(local: LeafCounty, code: str, query: Callable[[Session], Any]) -> Any:
    return await db(local, code).read(query)


async def dead_letters(local: LeafCounty, code: str) -> list[DeadLetter]:
    return await db(local, code).read(lambda s: list(s.exec(select(DeadLetter)).all()))


class Forger:
    """The attacking village: publishes on its own subjects, through its own server, as a node
    would, events it writes with whatever author it likes."""

    def __init__(self, js: nats.js.JetStreamContext) -> None:
        self._js = js
        self.sent: dict[str, tuple[str, str]] = {}  # event id -> (claimed author, what it forges)

    async def publish(self, kind: str, event: Any, what: str) -> None:
        """Publish ``event`` (a case, directive, joint or project event) on the village's subject of ``kind``."""
        event_type = event.WhichOneof("payload") or ""
        subject = event_subject(VILLAGE, kind, event_type)
        await self._js.publish(subject, event.SerializeToString(), headers={MSG_ID: event.id})
        self.sent[event.id] = (event.node, what)


def case_event(case: case_pb2.Case, node: str, **payload: Message) -> case_pb2.CaseEvent:
    event = case_pb2.CaseEvent(id=str(uuid.uuid4()), case_id=case.id, seq=case.version + 1, node=node, actor="冒充")
    event.at.GetCurrentTime()
    for name, value in payload.items():
        getattr(event, name).CopyFrom(value)
    return event


async def routing(local: LeafCounty, code: str, method: str, request: Message) -> Any:
    async with channel(local[code].grpc_address) as ch:
        return await getattr(routing_pb2_grpc.RoutingStub(ch), method)(request)


async def assessment(local: LeafCounty, code: str, method: str, request: Message) -> Any:
    async with channel(local[code].grpc_address) as ch:
        return await getattr(assessment_pb2_grpc.AssessmentStub(ch), method)(request)


async def case_at(local: LeafCounty, code: str, case_id: str) -> case_pb2.Case | None:
    return await db(local, code).read(lambda s: casestore.load_case(s, case_id=case_id))


async def settled(
    local: LeafCounty, codes: tuple[str, ...], check: Callable[[str], Awaitable[bool]], what: str
) -> None:
    """Wait until ``check`` holds at every node of ``codes``."""

    async def everywhere() -> bool:
        return all([await check(code) for code in codes])

    await eventually(everywhere, within_s=WITHIN_S, what=what)


async def test_a_village_forging_as_its_sibling_town_or_county_changes_nothing_anywhere(tmp_path: Path) -> None:
    async with tls_county(tmp_path) as local:
        # The genuine state: a case of the sibling, one of the town, a county directive to the
        # sibling, a joint case of the two towns, a project of the town.
        theirs = await submit(local, SIBLING)
        towns = await submit(local, TOWN)
        directive = await routing(
            local,
            COUNTY,
            "SendDirective",
            routing_pb2.SendDirectiveRequest(to_node=SIBLING, actor="县值班员", kind="directive", title="排查矛盾"),
        )
        joint = await routing(
            local,
            TOWN,
            "OpenJointCase",
            routing_pb2.OpenJointCaseRequest(actor="镇值班员", title="边界纠纷", invited=[OTHER_TOWN]),
        )
        project = await assessment(
            local,
            TOWN,
            "RegisterProject",
            assessment_pb2.RegisterProjectRequest(
                name="旧村改造", kind="拆迁", villages=[SIBLING], people_affected=30, actor="镇值班员"
            ),
        )

        await settled(local, (TOWN, COUNTY), lambda c: _has_case(local, c, theirs.id), "the sibling's case above")
        await settled(local, (COUNTY,), lambda c: _has_case(local, c, towns.id), "the town's own case at the county")

        async def joint_at_county(_: str) -> bool:
            found = await read(local, COUNTY, lambda s: jointstore.get_joint(s, joint_id=joint.id))
            return found is not None

        await settled(local, (COUNTY,), joint_at_county, "the joint case at the county hub")

        async def project_at_county(_: str) -> bool:
            return await read(local, COUNTY, lambda s: projectstore.load_project(s, project_id=project.id)) is not None

        await settled(local, (COUNTY,), project_at_county, "the town's project at the county")

        async def directive_at_sibling(_: str) -> bool:
            found = await read(local, SIBLING, lambda s: directivestore.get_directive(s, directive_id=directive.id))
            return found is not None

        await settled(local, (SIBLING,), directive_at_sibling, "the county's directive at the sibling")
        before = await snapshot(local, theirs.id, towns.id, directive.id, joint.id, project.id)

        nc = await nats.connect(local.client_url(VILLAGE))
        try:
            forger = Forger(nc.jetstream())
            await forge_everything(forger, theirs, towns, directive, joint, project)
            # Where each forged event must land as a dead letter: the town syncs the village's
            # cases, answers and projects; the county all of them (joint events: the hub only).
            joint_ids = {i for i, (_, what) in forger.sent.items() if what.startswith("joint")}
            passed_over = {i for i, (claimed, what) in forger.sent.items() if what == "answer" and claimed == VILLAGE}
            expected = {
                TOWN: set(forger.sent)
                - joint_ids
                - passed_over,  # an honest answer to another center's directive passes
                COUNTY: set(forger.sent),
            }
            for code, ids in expected.items():

                async def all_dead(_: str, code: str = code, ids: set[str] = ids) -> bool:
                    return ids <= {_event_id(d) for d in await dead_letters(local, code)}

                await settled(local, (code,), all_dead, f"every forged event a dead letter at {code}")
                for letter in await dead_letters(local, code):
                    event_id = _event_id(letter)
                    if event_id not in forger.sent:
                        continue
                    claimed, what = forger.sent[event_id]
                    assert letter.reason.startswith("伪造或越权："), (code, what, letter.reason)
                    assert claimed in letter.reason and VILLAGE in letter.reason, (code, what, letter.reason)

            # Nothing changed anywhere.
            assert await snapshot(local, theirs.id, towns.id, directive.id, joint.id, project.id) == before
            # Counted in the node's figures: the metrics and /api/v1/nodes.
            readings = await read(
                local, COUNTY, lambda s: gauges.readings(s, node_code=COUNTY, now=dt.datetime.now(dt.UTC))
            )
            forged = next(r for r in readings if r.name == "fengqiao_forged_messages")
            by_type = {labels["type"]: value for labels, value in forged.samples}
            assert by_type["triaged"] >= 4 and by_type["escalation_requested"] >= 3 and by_type["note"] == 2
            assert by_type["acknowledged"] == 2 and by_type["gate_passed"] == 2
            links = await node_links(local, COUNTY)
            assert links[COUNTY].forged_messages == sum(by_type.values()) == len(forger.sent)
            assert links[COUNTY].forged_latest_reason.startswith("伪造或越权：")
            assert links[COUNTY].dead_letters >= links[COUNTY].forged_messages

            await spoof_a_siblings_subject(local, nc, theirs)
        finally:
            await nc.close()

        await genuine_cases_continue(local, theirs, directive, joint, project)


async def forge_everything(
    forger: Forger,
    theirs: case_pb2.Case,
    towns: case_pb2.Case,
    directive: routing_pb2.Directive,
    joint: routing_pb2.JointCase,
    project: assessment_pb2.Project,
) -> None:
    triaged = case_pb2.Triaged(category="邻里", response_class=case_pb2.RESPONSE_CLASS_ROUTINE)
    asked = case_pb2.EscalationRequested(to_node=TOWN, reason="冒充上报")
    for node in (SIBLING, TOWN, COUNTY, VILLAGE):  # as the holder, above it — and as itself, not holding
        await forger.publish("case", case_event(theirs, node, triaged=triaged), "step")
    for node in (SIBLING, VILLAGE):
        await forger.publish("case", case_event(theirs, node, escalation_requested=asked), "escalation")
    county_asked = case_pb2.EscalationRequested(to_node=COUNTY, reason="冒充上报")
    await forger.publish("case", case_event(towns, TOWN, escalation_requested=county_asked), "escalation")
    for node in (TOWN, VILLAGE):
        await forger.publish(
            "case", case_event(theirs, node, escalation_accepted=case_pb2.EscalationAccepted()), "acceptance"
        )
    for node in (SIBLING, VILLAGE):
        answer = routing_pb2.DirectiveEvent(
            id=str(uuid.uuid4()), directive_id=directive.id, node=node, actor="冒充", acknowledged="已签收"
        )
        await forger.publish("directive", answer, "answer")
    for node in (TOWN, VILLAGE):
        note = routing_pb2.JointEvent(
            id=str(uuid.uuid4()), joint_case_id=joint.id, node=node, actor="冒充", lamport=99, note="冒充记录"
        )
        await forger.publish("joint", note, "joint")
    for node in (TOWN, VILLAGE):
        passed = assessment_pb2.ProjectEvent(
            id=str(uuid.uuid4()), project_id=project.id, seq=project.version + 1, node=node, actor="冒充"
        )
        passed.gate_passed.stage = "立项"
        passed.at.GetCurrentTime()
        await forger.publish("project", passed, "project")


async def snapshot(
    local: LeafCounty, case_id: str, town_case_id: str, directive_id: str, joint_id: str, project_id: str
) -> dict[str, object]:
    """What the forged events aimed at, everywhere it is kept."""
    seen: dict[str, object] = {}
    for code in (SIBLING, TOWN, COUNTY):
        seen[f"case@{code}"] = await case_at(local, code, case_id)
        seen[f"events@{code}"] = len(await read(local, code, lambda s: casestore.list_events(s, case_id=case_id)))
    for code in (TOWN, COUNTY):
        seen[f"town case@{code}"] = await case_at(local, code, town_case_id)
        seen[f"project@{code}"] = await read(local, code, lambda s: projectstore.load_project(s, project_id=project_id))
    seen["directive@county"] = await read(
        local, COUNTY, lambda s: directivestore.get_directive(s, directive_id=directive_id)
    )
    seen["joint@county"] = await read(local, COUNTY, lambda s: jointstore.get_joint(s, joint_id=joint_id))
    return seen


async def spoof_a_siblings_subject(local: LeafCounty, nc: nats.NATS, theirs: case_pb2.Case) -> None:
    """The village makes its own events stream capture the sibling's subjects (its server is its
    own) and publishes an event of the sibling's there: the town's source of the village's stream
    takes only the village's subtree, so it never reaches the town; a control event behind it does."""
    js = nc.jetstream()
    own = events_stream(VILLAGE)
    info = await js.stream_info(own)
    config = info.config
    config.subjects = [*own_up_subjects(VILLAGE), subtree_subjects(SIBLING)]
    await js.update_stream(config)
    spoofed = case_event(theirs, SIBLING, triaged=case_pb2.Triaged(category="邻里"))
    await js.publish(
        event_subject(SIBLING, "case", "triaged"), spoofed.SerializeToString(), headers={MSG_ID: spoofed.id}
    )
    control = case_event(theirs, SIBLING, triaged=case_pb2.Triaged(category="控制"))
    await js.publish(
        event_subject(VILLAGE, "case", "triaged"), control.SerializeToString(), headers={MSG_ID: control.id}
    )

    async def control_dead(_: str) -> bool:
        return control.id in {_event_id(d) for d in await dead_letters(local, TOWN)}

    await settled(local, (TOWN,), control_dead, "the control event behind the spoofed one at the town")
    town_js = local[TOWN].ctx.js  # type: ignore[union-attr]
    stream = await town_js.stream_info(events_stream(TOWN), subjects_filter=event_subject(SIBLING, "case", "triaged"))
    assert not (stream.state.subjects or {}), "the sibling's subject reached the town through the village's stream"
    assert spoofed.id not in {_event_id(d) for d in await dead_letters(local, TOWN)}
    events = await read(local, TOWN, lambda s: casestore.list_events(s, case_id=theirs.id))
    assert spoofed.id not in {e.id for e in events}
    config.subjects = own_up_subjects(VILLAGE)
    await js.update_stream(config)


async def genuine_cases_continue(
    local: LeafCounty,
    theirs: case_pb2.Case,
    directive: routing_pb2.Directive,
    joint: routing_pb2.JointCase,
    project: assessment_pb2.Project,
) -> None:
    """The sibling's next events apply at the town and the county: its escalation is accepted
    by the town, which then holds the case everywhere — one holder, no fork."""
    await routing(
        local, SIBLING, "Escalate", routing_pb2.EscalateRequest(case_id=theirs.id, actor="村值班员", reason="两村纠纷")
    )

    async def held_by_town(code: str) -> bool:
        case = await case_at(local, code, theirs.id)
        return case is not None and case.holder_node == TOWN and case.version == theirs.version + 2

    await settled(local, (SIBLING, TOWN, COUNTY), held_by_town, "the town holding the sibling's case everywhere")
    for code in (SIBLING, TOWN, COUNTY):
        events = await read(local, code, lambda s: casestore.list_events(s, case_id=theirs.id))
        assert [e.seq for e in events] == list(range(1, theirs.version + 3)), code
        assert {e.node for e in events} <= {SIBLING, TOWN}, code

    await routing(
        local, SIBLING, "AcknowledgeDirective", routing_pb2.DirectiveActionRequest(id=directive.id, actor="村值班员")
    )

    async def acknowledged(_: str) -> bool:
        found = await read(local, COUNTY, lambda s: directivestore.get_directive(s, directive_id=directive.id))
        return found is not None and found.status == routing_pb2.DIRECTIVE_STATUS_ACKNOWLEDGED

    await settled(local, (COUNTY,), acknowledged, "the sibling's 签收 at the county")

    await routing(
        local, TOWN, "AddJointNote", routing_pb2.AddJointNoteRequest(id=joint.id, actor="镇值班员", text="走访")
    )

    async def noted(_: str) -> bool:
        found = await read(local, COUNTY, lambda s: jointstore.get_joint(s, joint_id=joint.id))
        return found is not None and found.event_count == joint.event_count + 1

    await settled(local, (COUNTY,), noted, "the town's genuine joint note at the county")

    assessed = assessment_pb2.GateAssessment(
        dimensions=assessment_pb2.Dimensions(legality=90, reasonableness=85, feasibility=88, controllability=80),
        survey=assessment_pb2.Survey(respondents=200, supporters=190),
        assessor="县社会稳定风险评估中心",
    )
    request = assessment_pb2.AssessGateRequest(
        project_id=project.id, stage="立项", assessment=assessed, actor="镇值班员"
    )
    await assessment(local, TOWN, "AssessGate", request)

    async def passed(_: str) -> bool:
        found = await read(local, COUNTY, lambda s: projectstore.load_project(s, project_id=project.id))
        return found is not None and found.version == project.version + 1

    await settled(local, (COUNTY,), passed, "the town's genuine assessment at the county")


async def _has_case(local: LeafCounty, code: str, case_id: str) -> bool:
    return await case_at(local, code, case_id) is not None


EVENTS: dict[str, type[Message]] = {
    "case": case_pb2.CaseEvent,
    "directive": routing_pb2.DirectiveEvent,
    "joint": routing_pb2.JointEvent,
    "project": assessment_pb2.ProjectEvent,
}


def _event_id(letter: DeadLetter) -> str:
    """The id of the event a dead letter kept (its kind from the subject), empty if none."""
    message = EVENTS.get(letter.subject.split(".")[-2])
    try:
        return str(getattr(message.FromString(letter.data), "id", "")) if message is not None else ""
    except DecodeError:
        return ""
