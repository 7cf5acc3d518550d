"""A relay no row can block: a row that keeps failing is quarantined and only its aggregate
waits; a full upward buffer holds the outbox back in order and quarantines nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from devtools.natsserver import NatsServer
from fengqiao import bus, gauges, limits, migrations, outbox, quarantine
from fengqiao.clock import FakeClock
from fengqiao.db import Database
from fengqiao.divisions import events_stream, own_case_subjects
from tests.fengqiao.test_outbox import write_cases

VILLAGE = "371702101001"
STREAM = events_stream(VILLAGE)
SUBJECT = f"{own_case_subjects(VILLAGE)[:-1]}received"


@pytest.fixture
def db(database_url: Callable[[str], str]) -> AsyncIterator[Database]:
    database = Database(database_url("node"))
    migrations.upgrade(database.url)
    yield database
    database.close()


async def connect(nats_server: NatsServer, **stream: object) -> tuple[NATS, JetStreamContext]:
    nc = await bus.connect(nats_server.url, name="test")
    js = nc.jetstream()
    await bus.ensure_stream(
        js,
        name=STREAM,
        subjects=[own_case_subjects(VILLAGE)],
        limits=bus.StreamLimits(**stream),  # type: ignore[arg-type]
    )
    return nc, js


async def enqueue(db: Database, clock: FakeClock, *messages: outbox.Message) -> None:
    await db.run(lambda s: outbox.enqueue_many(s, messages=list(messages), now=clock.now()))


def message(n: int, aggregate: str = "", *, size: int = 10) -> outbox.Message:
    return outbox.Message(SUBJECT, f"m-{n}", b"x" * size, {}, aggregate)


async def stored_ids(js: JetStreamContext) -> list[str]:
    info = await js.stream_info(STREAM)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else []:
        msg = await js.get_msg(STREAM, seq)
        ids.append((msg.headers or {})[bus.MSG_ID])
    return ids


async def test_a_row_that_cannot_be_published_is_quarantined_and_only_its_aggregate_waits(
    db: Database, nats_server: NatsServer
) -> None:
    nc, js = await connect(nats_server)
    clock = FakeClock()
    try:
        oversized = message(0, "case-A", size=limits.MAX_PAYLOAD + 1)
        await enqueue(db, clock, oversized, message(1, "case-A"), message(2, "case-B"), message(3))
        relay = outbox.OutboxRelay(db=db, js=js, max_attempts=3, retry_after_s=0, now=clock.now)
        assert await relay.relay_once() == 2  # case-B and the row without an aggregate go on at once
        assert await db.read(quarantine.quarantined) == []
        for _ in range(2):
            assert await relay.relay_once() == 0
        (kept,) = await db.read(quarantine.quarantined)
        assert (kept.message_id, kept.aggregate, kept.attempts) == ("m-0", "case-A", 3)
        assert "MaxPayload" in kept.reason, kept.reason

        for again in (relay, outbox.OutboxRelay(db=db, js=js, max_attempts=3, retry_after_s=0)):  # and after a restart
            assert await again.relay_once() == 0, "case-A's later event waits behind its quarantined one"
        assert await db.run(outbox.pending_count) == 2, "the quarantined row is kept, never deleted"
        assert await stored_ids(js) == ["m-2", "m-3"]

        await enqueue(db, clock, message(4, "case-B"), message(5, "case-A"))
        assert await relay.relay_once() == 1
        assert await stored_ids(js) == ["m-2", "m-3", "m-4"]

        summary = await db.read(quarantine.summary)
        assert (summary.rows, summary.held, summary.oldest) == (1, ["case-A"], clock.now())
        assert "MaxPayload" in summary.reason
        readings = await db.read(lambda s: gauges.readings(s, node_code=VILLAGE, now=clock.now()))
        by_name = {r.name: r.samples for r in readings}
        assert by_name["fengqiao_outbox_quarantined"] == [({}, 1)]

    finally:
        await nc.close()


async def test_a_full_upward_buffer_holds_the_outbox_back_in_order_and_quarantines_nothing(
    db: Database, nats_server: NatsServer
) -> None:
    nc, js = await connect(nats_server, max_msgs=3, discard_new=True)
    clock = FakeClock()
    try:
        await enqueue(db, clock, *(message(n, f"case-{n}") for n in range(6)))
        relay = outbox.OutboxRelay(db=db, js=js, max_attempts=1, retry_after_s=0)
        for _ in range(3):  # more than max_attempts: a full buffer is no row's fault
            await relay.relay_once()
        assert await db.read(quarantine.quarantined) == []
        assert await stored_ids(js) == ["m-0", "m-1", "m-2"]
        assert await db.run(outbox.pending_count) == 3

        await js.purge_stream(STREAM)  # the parent sourced them: room again
        assert await relay.relay_once() == 3
        assert await db.run(outbox.pending_count) == 0
        assert await stored_ids(js) == ["m-3", "m-4", "m-5"]
    finally:
        await nc.close()


async def test_recorded_events_name_their_case_so_the_relay_keeps_its_order(db: Database) -> None:
    clock = FakeClock()
    (event,) = await write_cases(db, clock, 1)
    (row,) = await db.read(lambda s: outbox.pending(s, limit=10))
    assert json.loads(row.headers)[outbox.AGGREGATE] == event.case_id
    assert row.aggregate() == event.case_id


async def test_the_outbox_age_gauge_leaves_quarantined_rows_to_their_own_gauge(db: Database) -> None:
    clock = FakeClock()
    await enqueue(db, clock, message(0))
    (row,) = await db.read(lambda s: outbox.pending(s, limit=10))
    await db.run(
        lambda s: quarantine.keep(
            s,
            outbox_id=row.id,
            message_id="m-0",
            subject=SUBJECT,
            aggregate="",
            attempts=5,
            reason="t",
            now=clock.now(),
        )
    )
    clock.advance(dt.timedelta(hours=2))
    readings = await db.read(lambda s: gauges.readings(s, node_code=VILLAGE, now=clock.now()))
    by_name = {r.name: r.samples for r in readings}
    assert by_name["fengqiao_outbox_oldest_pending_seconds"] == [({}, 0.0)]
    assert by_name["fengqiao_outbox_quarantined"] == [({}, 1)]
    assert by_name["fengqiao_outbox_pending"] == [({}, 1)]
