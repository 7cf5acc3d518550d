"""A case taken in at a village reaches its town and its county over NATS (issue: foundation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
import pytest

from fengqiao.grpcutil import channel
from fengqiao.v1 import federation_pb2, federation_pb2_grpc, intake_pb2, intake_pb2_grpc
from harness.county import ADMIN_PASSWORD, LocalCounty, submit_request
from host.node import Node

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


async def eventually(check: Callable[[], Awaitable[bool]], *, within_s: float, what: str) -> None:
    """Poll ``check`` until it is true, failing with ``what`` after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {within_s} s: {what}")


async def has_case(address: str, case_id: str) -> bool:
    async with channel(address) as ch:
        try:
            await intake_pb2_grpc.IntakeStub(ch).GetCase(intake_pb2.GetCaseRequest(id=case_id))
            return True
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False


async def test_case_taken_in_at_village_reaches_town_and_county_within_five_seconds(
    county: LocalCounty,
) -> None:
    async with channel(county[VILLAGE].grpc_address) as ch:
        reply = await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))
    case = reply.case
    assert case.origin_node == VILLAGE and case.holder_node == VILLAGE
    assert case.receipt_no.startswith(f"{VILLAGE}-")
    assert await has_case(county[VILLAGE].grpc_address, case.id)

    for code in (TOWN, COUNTY):
        await eventually(
            lambda code=code: has_case(county[code].grpc_address, case.id),
            within_s=5,
            what=f"case {case.receipt_no} in {code}'s database",
        )
    # The other town never sees it.
    assert not await has_case(county["371702102"].grpc_address, case.id)

    async with channel(county[COUNTY].grpc_address) as ch:
        stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
            federation_pb2.GetNodeStatsRequest(code=COUNTY, period="")
        )
        events = await intake_pb2_grpc.IntakeStub(ch).ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=case.id))
    assert stats.received == 1
    assert len(events.events) == 1 and events.events[0].case_id == case.id
    assert events.events[0].received.case.description == case.description

    http = f"http://127.0.0.1:{county[COUNTY].http_port}"
    async with httpx.AsyncClient(base_url=http) as client:
        token = (
            await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = (await client.get(f"/api/v1/nodes/{COUNTY}/stats", headers=headers)).json()
        assert int(body["received"]) == 1
        village_stats = (await client.get(f"/api/v1/nodes/{VILLAGE}/stats", headers=headers)).json()
        assert int(village_stats["received"]) == 1


async def test_county_split_over_two_processes_serves_the_same_figures(county: LocalCounty) -> None:
    """Intake and routing in one process, federation and HTTP in another, one database."""
    await county.stop(COUNTY)
    await county.start(COUNTY, services=("intake", "routing", "assessment"), serve_http=False)
    front = county[COUNTY]
    settings = county.settings(
        COUNTY,
        services=("federation",),
        service_addresses={"intake": front.grpc_address, "routing": front.grpc_address},
    )
    back = Node(settings)
    await back.start()
    try:
        async with channel(county[VILLAGE].grpc_address) as ch:
            case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
        await eventually(lambda: has_case(front.grpc_address, case.id), within_s=5, what="case at county")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{back.http_port}") as client:
            token = (
                await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            stats = (await client.get(f"/api/v1/nodes/{COUNTY}/stats", headers=headers)).json()
            detail = await client.get(f"/api/v1/cases/{case.id}", headers=headers)
        assert int(stats["received"]) == 1
        assert detail.status_code == 200 and detail.json()["receipt_no"] == case.receipt_no
    finally:
        await back.stop()
