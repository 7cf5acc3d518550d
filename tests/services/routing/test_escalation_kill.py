"""1,000 cases escalate village → town while the town's routing process is killed with SIGKILL
twice and restarted: afterwards every case has exactly one holder, none is lost, and no event
is applied twice — at the village, the town and the county alike."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from devtools.natsserver import NatsServer
from fengqiao.db import Database
from fengqiao.grpcutil import channel
from fengqiao.v1 import intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty, small_county, submit_request
from tests.system.test_county_restart import NodeProcess
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"
CASES = 1000


async def serving(process: NodeProcess) -> bool:
    async with channel(f"127.0.0.1:{process.grpc_port}", timeout_s=1) as ch:
        try:
            await routing_pb2_grpc.RoutingStub(ch).ListDepartments(routing_pb2.ListDepartmentsRequest())
        except grpc.aio.AioRpcError:
            return False
        return True


async def holders(url: str) -> dict[str, tuple[str, int]]:
    """Each case's holder and status, straight from a node's database."""
    db = Database(url)
    try:
        rows = await db.run(lambda s: s.execute(text("SELECT id, holder_node, status FROM case_record")).all())
    finally:
        db.close()
    return {row[0]: (row[1], row[2]) for row in rows}


async def event_census(url: str) -> tuple[int, int, collections.Counter[str], list[str]]:
    """(events, distinct ids, accepted per case, cases whose seq numbers are not 1..n)."""
    db = Database(url)
    try:
        rows = await db.run(lambda s: s.execute(text("SELECT id, case_id, seq, type FROM case_event")).all())
    finally:
        db.close()
    accepted = collections.Counter(r[1] for r in rows if r[3] == "escalation_accepted")
    seqs: dict[str, list[int]] = collections.defaultdict(list)
    for row in rows:
        seqs[row[1]].append(row[2])
    gaps = [case for case, numbers in seqs.items() if sorted(numbers) != list(range(1, len(numbers) + 1))]
    return len(rows), len({r[0] for r in rows}), accepted, gaps


@pytest.mark.slow
async def test_killing_the_towns_routing_twice_while_1000_cases_escalate_leaves_one_holder_each(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    urls = {code: database_url(code) for code in (VILLAGE, TOWN, COUNTY)}
    local = LocalCounty(small_county(towns=1, villages=1), tmp_path / "local", nats_server.url, urls.__getitem__)
    routing = NodeProcess(local, urls[TOWN], tmp_path, code=TOWN, services="routing")
    routing.env["FQ_SERVE_HTTP"] = "false"
    rng = random.Random(20261122)
    kills_at = sorted(rng.sample(range(100, CASES - 100), 2))
    escalated: list[str] = []
    try:
        routing.start()
        await local.start(COUNTY)
        await local.start(TOWN, services=("intake", "federation", "assessment"))  # the town's other process
        await local.start(VILLAGE)
        await eventually(lambda: serving(routing), within_s=20, what="the town's routing process serving")
        async with channel(local[VILLAGE].grpc_address) as ch:
            intake, village_routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)
            for n in range(CASES):
                case = (await intake.SubmitCase(submit_request(VILLAGE, category="山林土地"))).case
                request = routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="跨村山林权属纠纷")
                await village_routing.Escalate(request)
                escalated.append(case.id)
                if n in kills_at:
                    routing.kill()  # SIGKILL: no graceful shutdown, mid-stream
                    await asyncio.sleep(rng.uniform(0.05, 0.5))
                    routing.start()

        async def all_held_by_the_town() -> bool:
            here = await holders(urls[TOWN])
            return sum(1 for cid in escalated if here.get(cid, ("", 0))[0] == TOWN) == CASES

        await eventually(all_held_by_the_town, within_s=180, what=f"the town holds all {CASES} escalated cases")
        for code in (VILLAGE, COUNTY):

            async def agrees(code: str = code) -> bool:
                there = await holders(urls[code])
                return all(there.get(cid, ("", 0))[0] == TOWN for cid in escalated)

            await eventually(agrees, within_s=120, what=f"{code} sees the town as the holder of every case")
    finally:
        routing.kill()
        await local.stop()

    assert len(set(escalated)) == CASES
    for code, url in urls.items():
        seen = await holders(url)
        assert set(escalated) <= set(seen), f"{code} lost cases"
        assert {seen[cid][0] for cid in escalated} == {TOWN}, f"{code}: a case with another holder"
        events, distinct, accepted, gaps = await event_census(url)
        assert events == distinct, f"{code}: an event stored twice"
        assert gaps == [], f"{code}: cases with missing or repeated sequence numbers: {gaps[:5]}"
        assert set(accepted) == set(escalated) and set(accepted.values()) == {1}, f"{code}: not one acceptance each"
