"""A relay no row can block (issue 19): an unpublishable row written by hand into a village's
outbox is quarantined and shown, and the cases taken in after it all reach the county."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlmodel import select

from fengqiao import bus, limits, outbox, quarantine
from fengqiao.cases.records import CaseRecord
from fengqiao.divisions import event_subject, events_stream
from fengqiao.grpcutil import channel
from fengqiao.v1 import intake_pb2_grpc
from harness.county import ADMIN_PASSWORD, LeafCounty, LocalCounty, submit_request
from tests.system.leaf_support import leaf_county
from tests.system.test_county_sync import eventually
from tests.system.test_metrics import scrape, value

VILLAGE, COUNTY = "371702101001", "371702"
CASES = 500


async def cases_at(local: LocalCounty | LeafCounty, code: str) -> int:
    node = local[code]
    assert node.ctx is not None
    query = select(func.count()).select_from(CaseRecord).where(CaseRecord.origin_node == VILLAGE)
    return int(await node.ctx.db.read(lambda s: s.exec(query).one()))


async def test_an_unpublishable_row_is_quarantined_and_the_500_cases_after_it_reach_the_county(
    county: LocalCounty,
) -> None:
    await unpublishable_row_then_cases(county)


async def test_the_same_over_leaf_nats_servers_started_from_the_rendered_configs(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        await unpublishable_row_then_cases(local)


async def unpublishable_row_then_cases(county: LocalCounty | LeafCounty) -> None:
    """A row too large for the broker, written by hand into the village's outbox, then 500 cases."""
    village = county[VILLAGE].ctx
    assert village is not None
    assert village.nc.max_payload == limits.MAX_PAYLOAD, "the broker's max_payload is the one configured"
    bad = outbox.Message(
        event_subject(VILLAGE, "case", "received"), "hand-written-1", b"x" * (limits.MAX_PAYLOAD + 1), {}
    )
    await village.db.run(lambda s: outbox.enqueue_many(s, messages=[bad], now=village.clock.now()))
    village.outbox_written()

    async with channel(county[VILLAGE].grpc_address) as ch:
        stub = intake_pb2_grpc.IntakeStub(ch)
        gate = asyncio.Semaphore(16)

        async def submit() -> None:
            async with gate:  # a loaded machine may take more than the default 5 s to answer one
                await stub.SubmitCase(submit_request(VILLAGE), timeout=60)

        await asyncio.gather(*(submit() for _ in range(CASES)))
    began = time.monotonic()  # every case taken in: from here they must all reach the county in 10 s

    async def all_at_the_county() -> bool:
        return await cases_at(county, COUNTY) == CASES

    await eventually(all_at_the_county, within_s=10 - (time.monotonic() - began), what=f"{CASES} cases at the county")

    async def quarantined() -> bool:
        return bool(await village.db.read(quarantine.quarantined))

    await eventually(quarantined, within_s=15, what="the bad row quarantined")
    (kept,) = await village.db.read(quarantine.quarantined)
    assert kept.message_id == "hand-written-1" and "MaxPayload" in kept.reason
    assert await village.db.run(outbox.pending_count) == 1, "kept, not deleted; nothing else waits"

    base = f"http://127.0.0.1:{county[VILLAGE].http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        nodes = (await client.get("/api/v1/nodes", headers=headers)).json()["items"]
    (shown,) = [n for n in nodes if n["code"] == VILLAGE]
    assert int(shown["outbox_quarantined"]) == 1 and "MaxPayload" in shown["outbox_quarantine_reason"]
    assert shown["outbox_quarantined_since"]
    _, samples = await scrape(county[VILLAGE].metrics.local_url)  # type: ignore[union-attr]
    assert value(samples, "fengqiao_outbox_quarantined", node=VILLAGE) == 1

    info = await village.js.stream_info(events_stream(VILLAGE))
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await village.js.get_msg(events_stream(VILLAGE), seq)
        ids.append((msg.headers or {})[bus.MSG_ID])
    assert len(ids) == len(set(ids)) == info.state.messages, "no event stored twice in the upward buffer"
    assert len(ids) >= CASES
