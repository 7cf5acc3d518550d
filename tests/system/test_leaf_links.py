"""Cut links and crashed servers in the leaf topology: nothing acknowledged is lost, all of it
arrives once when the link returns. Each link goes through a proxy the test cuts."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import grpc
import pytest

from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LeafCounty
from tests.services.routing.test_escalation import wait_holder
from tests.system.leaf_support import (
    COUNTY,
    TOWN,
    VILLAGE,
    leaf_county,
    node_links,
    received_events,
    sourced_messages,
    submit,
)
from tests.system.test_county_sync import eventually


async def submit_many(local: LeafCounty, code: str, count: int, *, concurrency: int = 16) -> list[pb.Case]:
    """Take ``count`` cases in at ``code``; the ones acknowledged (answered) are returned."""
    gate = asyncio.Semaphore(concurrency)
    accepted: list[pb.Case] = []

    async def one() -> None:
        async with gate:
            try:
                accepted.append(await submit(local, code))
            except grpc.aio.AioRpcError:
                pass  # not acknowledged: the caller would retry; it need not arrive

    await asyncio.gather(*(one() for _ in range(count)))
    return accepted


async def wait_all(local: LeafCounty, code: str, origin: str, count: int, *, within_s: float) -> float:
    """Seconds until ``code`` holds exactly ``count`` cases from ``origin``, each received once."""
    started = time.monotonic()

    async def arrived() -> bool:
        cases, received = await received_events(local, code, origin=origin)
        assert cases == received and cases <= count, f"{code}: {cases} cases, {received} received events"
        return cases == count

    await eventually(arrived, within_s=within_s, what=f"{count} cases from {origin} at {code}")
    return time.monotonic() - started


@pytest.mark.slow
async def test_a_village_cut_off_for_60_s_while_taking_500_cases_delivers_each_once_when_restored(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    async with leaf_county(tmp_path) as local:
        await local.cut(VILLAGE)
        cut_at = time.monotonic()
        accepted = await submit_many(local, VILLAGE, 500)
        assert len(accepted) == 500  # intake needs no link: the village works alone
        await wait_all(local, VILLAGE, VILLAGE, 500, within_s=30)

        async def village_sees_it_down() -> bool:
            return (await node_links(local, VILLAGE))[VILLAGE].upstream_link == "down"

        async def town_sees_it_down() -> bool:
            return (await node_links(local, TOWN))[VILLAGE].upstream_link == "down"

        await eventually(village_sees_it_down, within_s=10, what="the village reports its link down")
        await eventually(town_sees_it_down, within_s=30, what="the town reports the village's link down")
        await asyncio.sleep(max(0.0, 60 - (time.monotonic() - cut_at)))
        assert await received_events(local, TOWN, origin=VILLAGE) == (0, 0)

        local.restore(VILLAGE)
        to_town = await wait_all(local, TOWN, VILLAGE, 500, within_s=120)
        to_county = await wait_all(local, COUNTY, VILLAGE, 500, within_s=120) + to_town
        published = await sourced_messages(local, VILLAGE, VILLAGE)
        assert await sourced_messages(local, TOWN, VILLAGE) == published
        assert await sourced_messages(local, COUNTY, VILLAGE) == published

        links = await node_links(local, TOWN)
        assert links[VILLAGE].upstream_link == "up" and links[VILLAGE].upstream_lag == 0
        record_property("catchup_town_s", round(to_town, 2))
        record_property("catchup_county_s", round(to_county, 2))
        print(f"\ncatch-up after a 60 s cut, 500 cases: town {to_town:.2f} s, county {to_county:.2f} s")


async def test_a_village_server_killed_mid_flow_loses_nothing_acknowledged(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        flow = asyncio.create_task(submit_many(local, VILLAGE, 300, concurrency=8))

        async def halfway() -> bool:
            return (await sourced_messages(local, TOWN, VILLAGE)) >= 60

        await eventually(halfway, within_s=30, what="the flow under way")
        local.stop_server(VILLAGE, kill=True)  # SIGKILL: JetStream had acknowledged some, not others
        await asyncio.sleep(random.uniform(0.5, 1.5))
        await local.start_server(VILLAGE)
        accepted = await flow
        assert len(accepted) == 300  # intake commits locally; the outbox waits for the server
        for code in (VILLAGE, TOWN, COUNTY):
            await wait_all(local, code, VILLAGE, 300, within_s=60)
        ids = {c.id for c in accepted}
        assert len(ids) == 300


async def test_a_town_cut_off_from_the_county_keeps_serving_its_villages_and_syncs_later(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        await local.cut(TOWN)
        case = await submit(local, VILLAGE)
        async with channel(local[VILLAGE].grpc_address) as ch:
            await routing_pb2_grpc.RoutingStub(ch).Escalate(
                routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="当事人分属两村")
            )
        await wait_holder(local, TOWN, case.id, TOWN, pb.CASE_STATUS_RECEIVED)  # type: ignore[arg-type]
        await wait_holder(local, VILLAGE, case.id, TOWN, pb.CASE_STATUS_RECEIVED)  # type: ignore[arg-type]
        async with channel(local[TOWN].grpc_address) as ch:
            triage = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
            await intake_pb2_grpc.IntakeStub(ch).Triage(
                intake_pb2.TriageRequest(case_id=case.id, actor="镇值班员", step=triage)
            )
            dispatched = await routing_pb2_grpc.RoutingStub(ch).Dispatch(
                routing_pb2.DispatchRequest(case_id=case.id, actor="镇值班员", requirement="入户调解")
            )
        assert dispatched.status == pb.CASE_STATUS_ASSIGNED
        await wait_holder(local, VILLAGE, case.id, TOWN, pb.CASE_STATUS_ASSIGNED)  # type: ignore[arg-type]
        town_case = await submit(local, TOWN)
        assert await received_events(local, COUNTY, origin=VILLAGE) == (0, 0)

        local.restore(TOWN)
        await wait_holder(local, COUNTY, case.id, TOWN, pb.CASE_STATUS_ASSIGNED)  # type: ignore[arg-type]
        await wait_all(local, COUNTY, TOWN, 1, within_s=30)
        assert town_case.origin_node == TOWN
