"""Downward commands with real NATS: a county directive reaches a town that was down when it was
sent, and a village two tiers below; 签收 and 办结 travel back up; bad ones are dead letters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import grpc
import nats
import pytest
from sqlmodel import select

from devtools.natsserver import NatsServer
from fengqiao.divisions import down_stream, down_subject
from fengqiao.grpcutil import channel
from fengqiao.models import DeadLetter
from fengqiao.v1 import routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty
from tests.conftest import running_county
from tests.services.intake.test_closed_loop import ts
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


async def directives(local: LocalCounty, code: str, direction: str) -> list[routing_pb2.Directive]:
    async with channel(local[code].grpc_address) as ch:
        reply = await routing_pb2_grpc.RoutingStub(ch).ListDirectives(
            routing_pb2.ListDirectivesRequest(direction=direction)
        )
    return list(reply.directives)


async def sourcing(local: LocalCounty, code: str) -> bool:
    """The node's down stream is connected to its parent's (started after it, so revived first)."""
    info = await local[code].ctx.js.stream_info(down_stream(code))  # type: ignore[union-attr]
    return bool(info.sources) and all(s.error is None for s in info.sources or [])


async def call(local: LocalCounty, code: str, method: str, request: object) -> routing_pb2.Directive:
    async with channel(local[code].grpc_address) as ch:
        reply: routing_pb2.Directive = await getattr(routing_pb2_grpc.RoutingStub(ch), method)(request)
    return reply


async def test_directives_reach_a_town_that_was_down_and_a_village_and_their_answers_come_back(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with running_county(tmp_path, nats_server.url, database_url, towns=1, villages=1) as local:
        await eventually(lambda: sourcing(local, TOWN), within_s=20, what="the town's down stream sources the county's")
        await local.stop(TOWN)  # the town is down when the county sends
        deadline = ts(dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
        to_town = await call(
            local,
            COUNTY,
            "SendDirective",
            routing_pb2.SendDirectiveRequest(
                to_node=TOWN,
                actor="县平台值班员",
                kind="assignment",
                title="排查征地补偿矛盾",
                body="本周内全面排查",
                deadline=deadline,
            ),
        )
        to_village = await call(
            local,
            COUNTY,
            "SendDirective",
            routing_pb2.SendDirectiveRequest(to_node=VILLAGE, actor="县平台值班员", title="汛期隐患排查"),
        )
        assert to_town.status == routing_pb2.DIRECTIVE_STATUS_ISSUED and to_town.issued_by == "县平台值班员"

        async def village_has_it() -> bool:
            return [d.id for d in await directives(local, VILLAGE, "in")] == [to_village.id]

        await eventually(
            village_has_it, within_s=10, what="the county's directive reaches the village through the town"
        )

        await local.start(TOWN)

        async def town_has_it() -> bool:
            return [d.title for d in await directives(local, TOWN, "in")] == ["排查征地补偿矛盾"]

        await eventually(town_has_it, within_s=10, what="the directive reaches the town after it came back")

        complete = routing_pb2.DirectiveActionRequest(id=to_town.id, actor="镇综治中心", text="已排查 12 起")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(local, TOWN, "CompleteDirective", complete)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "须先签收" in (
            caught.value.details() or ""
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(
                local, VILLAGE, "AcknowledgeDirective", routing_pb2.DirectiveActionRequest(id=to_town.id, actor="村")
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        await call(
            local, TOWN, "AcknowledgeDirective", routing_pb2.DirectiveActionRequest(id=to_town.id, actor="镇综治中心")
        )
        done = await call(local, TOWN, "CompleteDirective", complete)
        assert done.status == routing_pb2.DIRECTIVE_STATUS_COMPLETED
        await call(
            local, VILLAGE, "AcknowledgeDirective", routing_pb2.DirectiveActionRequest(id=to_village.id, actor="村站")
        )

        async def county_sees_the_answers() -> bool:
            sent = {d.id: d for d in await directives(local, COUNTY, "out")}
            return (
                sent[to_town.id].status == routing_pb2.DIRECTIVE_STATUS_COMPLETED
                and sent[to_town.id].result == "已排查 12 起"
                and sent[to_village.id].status == routing_pb2.DIRECTIVE_STATUS_ACKNOWLEDGED
            )

        await eventually(county_sees_the_answers, within_s=10, what="签收 and 办结 travel back to the county")
        assert (
            await directives(local, TOWN, "out") == []
        )  # the town keeps no copy of the county's directive to its village


async def test_a_center_can_only_send_down_its_own_subtree(chain: LocalCounty) -> None:
    for sender, target in ((TOWN, COUNTY), (TOWN, TOWN), (VILLAGE, TOWN), (TOWN, "371702102001")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(
                chain,
                sender,
                "SendDirective",
                routing_pb2.SendDirectiveRequest(to_node=target, actor="值班员", title="越级"),
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (sender, target)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(
            chain, COUNTY, "SendDirective", routing_pb2.SendDirectiveRequest(to_node=TOWN, actor="值班员", title=" ")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "标题" in (caught.value.details() or "")


async def test_a_broken_or_forged_directive_on_the_bus_is_a_dead_letter_and_the_next_one_arrives(
    chain: LocalCounty, nats_server: NatsServer
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.publish(down_subject(COUNTY, TOWN, "directive", "issued"), b"\xff not a directive")
        forged = routing_pb2.DirectiveEvent(id="forged-1", directive_id="d-forged", node=VILLAGE, actor="x")
        forged.issued.CopyFrom(routing_pb2.Directive(from_node=VILLAGE, to_node=TOWN, kind="directive", title="伪造"))
        await js.publish(down_subject(COUNTY, TOWN, "directive", "issued"), forged.SerializeToString())
    finally:
        await nc.close()
    good = await call(
        chain, COUNTY, "SendDirective", routing_pb2.SendDirectiveRequest(to_node=TOWN, actor="值班员", title="正常指令")
    )

    async def town_has_the_good_one() -> bool:
        return [d.id for d in await directives(chain, TOWN, "in")] == [good.id]

    await eventually(town_has_the_good_one, within_s=10, what="the valid directive after two bad ones")
    db = chain[TOWN].ctx.db  # type: ignore[union-attr]
    letters = await db.run(lambda s: list(s.exec(select(DeadLetter)).all()))
    reasons = sorted(letter.reason for letter in letters)
    assert len(reasons) == 2, reasons
    assert any("无法解析" in r for r in reasons)
    assert any(r.startswith(f"伪造或越权：指令事件自称由 {VILLAGE} 发出，实际发送中心为 {COUNTY}") for r in reasons)
