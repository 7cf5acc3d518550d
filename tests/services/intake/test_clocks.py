"""Deadline warning and 督办 fire once each at the right moments, also across a restart (fake clock)."""

from __future__ import annotations

import collections
import datetime as dt

from fengqiao.cases import lifecycle
from fengqiao.cases import store as casestore
from fengqiao.clock import FakeClock
from fengqiao.grpcutil import channel
from fengqiao.v1 import intake_pb2_grpc
from harness.county import LocalCounty, submit_request
from services.intake.clocks import ClockWatch
from services.intake.config import IntakeSettings
from tests.system.test_county_sync import eventually

VILLAGE, TOWN = "371702101001", "371702101"


async def alarms(local: LocalCounty, code: str, case_id: str) -> collections.Counter[str]:
    db = local[code].ctx.db  # type: ignore[union-attr]
    events = await db.run(lambda s: casestore.list_events(s, case_id=case_id))
    return collections.Counter(lifecycle.event_type(e) for e in events if e.WhichOneof("payload") != "received")


def watch(local: LocalCounty) -> ClockWatch:
    node = local[VILLAGE]
    assert node.ctx is not None
    return ClockWatch(
        db=node.ctx.db, node_code=VILLAGE, settings=IntakeSettings(), clock=node.clock, on_commit=lambda: None
    )


async def test_warning_at_80_percent_and_supervision_at_the_deadline_fire_once_each_across_a_restart(
    chain: LocalCounty,
) -> None:
    clock = chain.clock
    assert isinstance(clock, FakeClock)
    async with channel(chain[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
    assert case.deadline.ToDatetime(dt.UTC) == clock.now() + dt.timedelta(hours=24)

    clock.advance(dt.timedelta(hours=19, minutes=10))  # 79.9 %: nothing yet
    await watch(chain).scan_once()
    assert await alarms(chain, VILLAGE, case.id) == {}

    clock.advance(dt.timedelta(minutes=5))  # past 80 %
    for _ in range(3):
        await watch(chain).scan_once()
    assert await alarms(chain, VILLAGE, case.id) == {"deadline_warning": 1}

    await chain.stop(VILLAGE)  # the node restarts between the warning and the deadline
    await chain.start(VILLAGE)

    clock.advance(dt.timedelta(hours=4, minutes=44))  # one minute before the deadline
    await watch(chain).scan_once()
    assert await alarms(chain, VILLAGE, case.id) == {"deadline_warning": 1}

    clock.advance(dt.timedelta(minutes=2))
    for _ in range(3):
        await watch(chain).scan_once()
    assert await alarms(chain, VILLAGE, case.id) == {"deadline_warning": 1, "supervision": 1}

    events = await chain[VILLAGE].ctx.db.run(lambda s: casestore.list_events(s, case_id=case.id))  # type: ignore[union-attr]
    supervision = next(e for e in events if e.WhichOneof("payload") == "supervision")
    assert supervision.supervision.to_node == TOWN
    assert supervision.supervision.deadline == case.deadline

    async def town_sees_the_supervision() -> bool:
        return (await alarms(chain, TOWN, case.id)).get("supervision") == 1

    await eventually(town_sees_the_supervision, within_s=5, what="督办 replicated to the town")


async def test_a_closed_case_owes_no_alarm(chain: LocalCounty) -> None:
    clock = chain.clock
    assert isinstance(clock, FakeClock)
    async with channel(chain[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
    db = chain[VILLAGE].ctx.db  # type: ignore[union-attr]
    pending = await db.run(lambda s: casestore.with_alarms_pending(s, holder_node=VILLAGE))
    assert [c.id for c in pending] == [case.id]
    clock.advance(dt.timedelta(days=3))
    await watch(chain).scan_once()
    assert await db.run(lambda s: casestore.with_alarms_pending(s, holder_node=VILLAGE)) == []
