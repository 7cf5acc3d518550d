"""三联 joint cases and 联防 alerts end to end: three towns A, B, C (C borders B, not A) and the
county, real nats-server and databases; everything travels through the county hub.

"B's link is cut" is, for now, B's node stopped and restarted (its durable consumers catch up
from the streams). ``cut_link`` and ``restore_link`` are the one place to change when the
leaf-node nats-servers with real link cuts land.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from sqlmodel import select

from devtools.natsserver import NatsServer
from fengqiao.divisions import event_subject
from fengqiao.grpcutil import channel
from fengqiao.models import DeadLetter
from fengqiao.v1 import federation_pb2, federation_pb2_grpc, routing_pb2_grpc
from fengqiao.v1 import routing_pb2 as pb
from harness.county import LocalCounty, small_county
from services.routing.joint import store
from tests.system.test_county_sync import eventually

COUNTY, A, B, C = "371702", "371702101", "371702102", "371702103"
NEIGHBOURS = {A: [B], B: [A, C], C: [B]}


async def cut_link(local: LocalCounty, code: str) -> None:
    await local.stop(code)  # swap for the leaf-node link cut when it lands


async def restore_link(local: LocalCounty, code: str) -> None:
    await local.start(code)  # swap for restoring the leaf-node link


@asynccontextmanager
async def three_towns(tmp_path: Path, nats_url: str, database_url: Callable[[str], str]) -> AsyncIterator[LocalCounty]:
    memo: dict[str, str] = {}

    def url(code: str) -> str:
        if code not in memo:  # a restarted node finds its own database again
            memo[code] = database_url(code)
        return memo[code]

    topology = small_county(towns=3, villages=0, neighbours=NEIGHBOURS)
    local = LocalCounty(topology, tmp_path / "county", nats_url, url)
    await local.start()
    try:
        yield local
    finally:
        await local.stop()


async def rpc(local: LocalCounty, code: str, method: str, request: object) -> Any:
    async with channel(local[code].grpc_address) as ch:
        return await getattr(routing_pb2_grpc.RoutingStub(ch), method)(request)


async def refused(local: LocalCounty, code: str, method: str, request: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc(local, code, method, request)
    return caught.value.code()


async def joint(local: LocalCounty, code: str, joint_id: str) -> pb.JointCase | None:
    try:
        found: pb.JointCase = await rpc(local, code, "GetJointCase", pb.GetJointCaseRequest(id=joint_id))
        return found
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None


async def same_timeline(local: LocalCounty, joint_id: str, codes: tuple[str, ...], events: int) -> bool:
    """Every copy holds ``events`` events with the same ordered-timeline hash."""
    copies = [await joint(local, code, joint_id) for code in codes]
    return (
        all(c is not None and c.event_count == events for c in copies)
        and len({c.timeline_hash for c in copies if c is not None}) == 1
    )


async def test_a_joint_case_is_shared_by_its_towns_and_the_county_survives_a_cut_link_and_closes_on_both_sign_offs(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with three_towns(tmp_path, nats_server.url, database_url) as local:
        not_neighbour = pb.OpenJointCaseRequest(actor="甲镇", title="x", invited=[C])
        assert await refused(local, A, "OpenJointCase", not_neighbour) == grpc.StatusCode.INVALID_ARGUMENT
        opened: pb.JointCase = await rpc(
            local,
            A,
            "OpenJointCase",
            pb.OpenJointCaseRequest(
                actor="甲镇值班员", title="甲乙两镇交界山林权属纠纷", category="山林土地", invited=[B]
            ),
        )
        jid = opened.id
        assert [(p.node, p.status) for p in opened.participants] == [
            (A, pb.JOINT_PARTICIPANT_STATUS_ACCEPTED),
            (B, pb.JOINT_PARTICIPANT_STATUS_INVITED),
        ]

        async def b_invited() -> bool:
            return await joint(local, B, jid) is not None

        await eventually(b_invited, within_s=10, what="the invitation reaches B through the county hub")
        await rpc(local, B, "AnswerJointInvitation", pb.AnswerJointInvitationRequest(id=jid, actor="乙镇", accept=True))

        notes = [(A, f"甲镇记录{i}") for i in range(4)] + [(B, f"乙镇记录{i}") for i in range(4)]
        await asyncio.gather(
            *(
                rpc(local, code, "AddJointNote", pb.AddJointNoteRequest(id=jid, actor="专班", text=t))
                for code, t in notes
            )
        )
        await rpc(
            local,
            B,
            "AddJointMember",
            pb.AddJointMemberRequest(id=jid, actor="乙镇", member=pb.JointMember(name="王调解", unit="司法所")),
        )

        async def shared() -> bool:
            return await same_timeline(local, jid, (A, B, COUNTY), 11)

        await eventually(shared, within_s=15, what="A, B and the county hold the same 11-event timeline")

        # C is no participant: the county and A refuse it, and C holds no copy at all.
        for at in (COUNTY, A):
            assert (
                await refused(local, at, "GetJointCase", pb.GetJointCaseRequest(id=jid, viewer=C))
                == grpc.StatusCode.PERMISSION_DENIED
            )
            assert (
                await refused(local, at, "GetJointTimeline", pb.GetJointCaseRequest(id=jid, viewer=C))
                == grpc.StatusCode.PERMISSION_DENIED
            )
        assert await joint(local, C, jid) is None
        assert (await rpc(local, COUNTY, "ListJointCases", pb.ListJointCasesRequest(viewer=C))).joint_cases == []
        assert [c.id for c in (await rpc(local, COUNTY, "ListJointCases", pb.ListJointCasesRequest())).joint_cases] == [
            jid
        ]

        # B's link is cut while A and the county add to the timeline.
        await cut_link(local, B)
        deadline = pb.AddJointTaskRequest(id=jid, actor="甲镇", node=A, title="测绘交界山林四至")
        deadline.deadline.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=5))
        await rpc(local, A, "AddJointTask", deadline)
        await rpc(
            local,
            COUNTY,
            "AddJointNote",
            pb.AddJointNoteRequest(id=jid, actor="县综治中心", text="县级督导：一周内化解"),
        )
        await rpc(local, A, "AddJointNote", pb.AddJointNoteRequest(id=jid, actor="甲镇", text="已约双方见面"))
        await rpc(
            local,
            A,
            "CompleteJointTask",
            pb.CompleteJointTaskRequest(id=jid, actor="甲镇", task_id="T1", result="已测绘"),
        )

        async def a_and_county() -> bool:
            return await same_timeline(local, jid, (A, COUNTY), 15)

        await eventually(a_and_county, within_s=15, what="A and the county share the timeline while B is cut off")
        await restore_link(local, B)

        async def caught_up() -> bool:
            return await same_timeline(local, jid, (A, B, COUNTY), 15)

        await eventually(caught_up, within_s=20, what="B catches up to the identical timeline after its link returns")
        timelines = [
            await rpc(local, code, "GetJointTimeline", pb.GetJointCaseRequest(id=jid)) for code in (A, B, COUNTY)
        ]
        assert len({t.hash for t in timelines}) == 1 and all(e.applied for e in timelines[0].entries)
        assert [e.event.id for e in timelines[0].entries] == [e.event.id for e in timelines[1].entries]
        keys = [(e.event.lamport, e.event.node, e.event.id) for e in timelines[0].entries]
        assert keys == sorted(keys)

        # Joint sign-off: open after A's, closed after B's; each counts it once, the county once.
        after_a = await rpc(
            local, A, "SignOffJointCase", pb.SignOffJointCaseRequest(id=jid, actor="甲镇", comment="同意")
        )
        assert after_a.status == pb.JOINT_CASE_STATUS_OPEN

        async def b_sees_a_sign() -> bool:
            found = await joint(local, B, jid)
            return found is not None and found.participants[0].signed_off

        await eventually(b_sees_a_sign, within_s=10, what="A's sign-off reaches B")
        closed = await rpc(
            local, B, "SignOffJointCase", pb.SignOffJointCaseRequest(id=jid, actor="乙镇", comment="同意")
        )
        assert closed.status == pb.JOINT_CASE_STATUS_CLOSED

        async def closed_everywhere() -> bool:
            copies = [await joint(local, code, jid) for code in (A, B, COUNTY)]
            return all(c is not None and c.status == pb.JOINT_CASE_STATUS_CLOSED for c in copies)

        await eventually(closed_everywhere, within_s=10, what="the closed case everywhere")
        assert (
            await refused(local, A, "AddJointNote", pb.AddJointNoteRequest(id=jid, actor="甲镇", text="迟到"))
            == grpc.StatusCode.FAILED_PRECONDITION
        )
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        end = start + dt.timedelta(days=2)
        for code in (A, B, COUNTY, C):
            db = local[code].ctx.db  # type: ignore[union-attr]
            counts = await db.read(lambda s, c=code: store.joint_counts(s, within=c, start=start, end=end))
            assert counts == ((0, 0) if code == C else (1, 1)), code
        async with channel(local[COUNTY].grpc_address) as ch:  # the county's figures count it once
            stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
                federation_pb2.GetNodeStatsRequest(code=COUNTY, include_children=True)
            )
        assert (stats.joint_cases_opened, stats.joint_cases_closed) == (1, 1)
        by_town = {c.code: (c.joint_cases_opened, c.joint_cases_closed) for c in stats.children}
        assert by_town[A] == by_town[B] == (1, 1) and by_town[C] == (0, 0)


async def test_forged_joint_events_are_dead_letters_at_the_hub(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with three_towns(tmp_path, nats_server.url, database_url) as local:
        case = await rpc(
            local, A, "OpenJointCase", pb.OpenJointCaseRequest(actor="甲镇", title="婚姻纠纷", invited=[B])
        )

        async def county_has_the_real_one() -> bool:
            copy = await joint(local, COUNTY, case.id)
            return copy is not None

        # the hub knows the case first (a participant learns of it from the hub), then the forgeries
        await eventually(county_has_the_real_one, within_s=10, what="A's joint case at the county")
        posing = pb.JointEvent(id="forged-1", joint_case_id=case.id, node=A, actor="冒充", lamport=9, note="冒充甲镇")
        intruder = pb.JointEvent(id="forged-2", joint_case_id=case.id, node=C, actor="丙镇", lamport=9, note="插手")
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await js.publish(event_subject(C, "joint", "note"), posing.SerializeToString())
            await js.publish(event_subject(C, "joint", "note"), intruder.SerializeToString())
            await js.publish(event_subject(C, "joint", "note"), b"\xff garbage")
        finally:
            await nc.close()
        db = local[COUNTY].ctx.db  # type: ignore[union-attr]

        async def three_letters() -> bool:
            return len(await db.read(lambda s: list(s.exec(select(DeadLetter)).all()))) == 3

        await eventually(three_letters, within_s=10, what="three dead letters at the county")
        reasons = sorted(d.reason for d in await db.read(lambda s: list(s.exec(select(DeadLetter)).all())))
        assert any(r.startswith(f"伪造或越权：联合案件事件自称由 {A} 发出，实际发送中心为 {C}") for r in reasons)
        assert any(r.startswith(f"伪造或越权：联合案件事件（note）由 {C} 发出，只有联合案件参与方") for r in reasons)
        assert any("无法解析" in r for r in reasons)

        assert (await joint(local, COUNTY, case.id)).event_count == 1  # type: ignore[union-attr]  # none of the forged


async def test_a_risk_alert_reaches_a_neighbour_whose_link_was_cut_and_its_acknowledgement_comes_back(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with three_towns(tmp_path, nats_server.url, database_url) as local:
        assert (
            await refused(
                local,
                A,
                "RaiseRiskAlert",
                pb.RaiseRiskAlertRequest(actor="甲镇", to_nodes=[C], kind="other", title="x"),
            )
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        await cut_link(local, B)
        alert = await rpc(
            local,
            A,
            "RaiseRiskAlert",
            pb.RaiseRiskAlertRequest(
                actor="甲镇值班员", kind="wanted_vehicle", title="协查套牌货车 鲁R·12345", level="high"
            ),
        )
        assert list(alert.to_nodes) == [B]  # every neighbour of A when none are named
        await restore_link(local, B)

        async def alerts(code: str, direction: str = "") -> list[pb.RiskAlert]:
            reply = await rpc(local, code, "ListRiskAlerts", pb.ListRiskAlertsRequest(direction=direction))
            return list(reply.alerts)

        async def b_has_it() -> bool:
            return [a.id for a in await alerts(B, "in")] == [alert.id]

        await eventually(b_has_it, within_s=15, what="the alert reaches B after its link returns")
        await rpc(
            local, B, "AcknowledgeRiskAlert", pb.AcknowledgeRiskAlertRequest(id=alert.id, actor="乙镇", note="已布控")
        )

        async def acknowledged_at(code: str) -> bool:
            found = [a for a in await alerts(code) if a.id == alert.id]
            return bool(found) and found[0].fully_acknowledged and found[0].acks[0].note == "已布控"

        for code in (A, COUNTY):
            await eventually(lambda c=code: acknowledged_at(c), within_s=10, what=f"B's acknowledgement at {code}")
        assert await alerts(C) == []
        assert (
            await refused(local, C, "AcknowledgeRiskAlert", pb.AcknowledgeRiskAlertRequest(id=alert.id, actor="丙镇"))
            == grpc.StatusCode.NOT_FOUND
        )


async def test_a_retried_opening_with_the_same_request_id_gives_the_same_joint_case_once(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with three_towns(tmp_path, nats_server.url, database_url) as local:
        request = pb.OpenJointCaseRequest(
            actor="甲镇", title="交界水渠用水纠纷", invited=[B], client_request_id="soak-joint-0001"
        )
        first = await rpc(local, A, "OpenJointCase", request)
        again, concurrent = await asyncio.gather(
            rpc(local, A, "OpenJointCase", request), rpc(local, A, "OpenJointCase", request)
        )
        assert first.id == again.id == concurrent.id and again.event_count == 1
        held = (await rpc(local, A, "ListJointCases", pb.ListJointCasesRequest())).joint_cases
        assert [c.id for c in held] == [first.id]
        db = local[A].ctx.db  # type: ignore[union-attr]
        assert len(await db.read(lambda s: store.timeline(s, joint_id=first.id))) == 1

        async def county_has_one() -> bool:
            reply = await rpc(local, COUNTY, "ListJointCases", pb.ListJointCasesRequest())
            return [c.id for c in reply.joint_cases] == [first.id]

        await eventually(county_has_one, within_s=10, what="the county holds the one joint case")
        # Another town's request id never names A's case; no request id opens a new one each time.
        at_b = await rpc(
            local,
            B,
            "OpenJointCase",
            pb.OpenJointCaseRequest(actor="乙镇", title="另案", invited=[C], client_request_id="soak-joint-0001"),
        )
        assert at_b.id != first.id
        plain = [
            (await rpc(local, A, "OpenJointCase", pb.OpenJointCaseRequest(actor="甲镇", title="另案", invited=[B]))).id
            for _ in range(2)
        ]
        assert len({first.id, *plain}) == 3
        bad = pb.OpenJointCaseRequest(actor="甲镇", title="x", invited=[B], client_request_id="短")
        assert await refused(local, A, "OpenJointCase", bad) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_retried_note_member_or_task_with_the_same_request_id_is_added_once(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with three_towns(tmp_path, nats_server.url, database_url) as local:
        opened = await rpc(local, A, "OpenJointCase", pb.OpenJointCaseRequest(actor="甲镇", title="x", invited=[B]))
        jid = opened.id

        def note(text: str, request_id: str = "") -> pb.AddJointNoteRequest:
            return pb.AddJointNoteRequest(id=jid, actor="甲镇记录员", text=text, client_request_id=request_id)

        first = await rpc(local, A, "AddJointNote", note("召集双方面谈", "soak-note-0001"))
        again, twin, other = await asyncio.gather(  # a retry, its concurrent twin, and a retry by mistake
            rpc(local, A, "AddJointNote", note("召集双方面谈", "soak-note-0001")),
            rpc(local, A, "AddJointNote", note("召集双方面谈", "soak-note-0001")),
            rpc(local, A, "AddJointNote", note("另一条记录", "soak-note-0001")),
        )
        assert first.event_count == again.event_count == twin.event_count == other.event_count == 2
        assert first.timeline_hash == again.timeline_hash == twin.timeline_hash
        # Another request id, or none (as before), adds a note each time.
        for request in (
            note("实地查看", "soak-note-0002"),
            note("实地查看", "soak-note-0003"),
            note("档案"),
            note("档案"),
        ):
            await rpc(local, A, "AddJointNote", request)

        member = pb.JointMember(name="王组长", unit="司法所", role="组长")
        task = pb.AddJointTaskRequest(id=jid, actor="甲镇", title="核实现场", client_request_id="soak-task-0001")
        task.deadline.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
        for _ in range(2):
            add = pb.AddJointMemberRequest(id=jid, actor="甲镇", member=member, client_request_id="soak-member-0001")
            await rpc(local, A, "AddJointMember", add)
            case = await rpc(local, A, "AddJointTask", task)
        assert ([m.name for m in case.members], [t.id for t in case.tasks]) == (["王组长"], ["T1"])
        assert case.event_count == 1 + 5 + 2

        timeline = await rpc(local, A, "GetJointTimeline", pb.GetJointCaseRequest(id=jid))
        notes = [e.event.note for e in timeline.entries if e.event.WhichOneof("payload") == "note"]
        assert sorted(notes) == sorted(["召集双方面谈", "实地查看", "实地查看", "档案", "档案"])
        assert all(e.applied for e in timeline.entries)

        async def same_everywhere() -> bool:
            return await same_timeline(local, jid, (A, B, COUNTY), 8)

        await eventually(same_everywhere, within_s=10, what="one timeline of 8 events at A, B and the county")
        # The same request id at another center is another write; a malformed one is refused.
        at_county = await rpc(local, COUNTY, "AddJointNote", note("县级督办", "soak-note-0001"))
        assert at_county.event_count == 9
        bad = note("x", "短")
        assert await refused(local, A, "AddJointNote", bad) == grpc.StatusCode.INVALID_ARGUMENT
