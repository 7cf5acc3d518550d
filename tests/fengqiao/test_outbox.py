"""Outbox and inbox against a real nats-server and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlmodel import Session, select

from devtools.natsserver import NatsServer
from fengqiao import bus, errors, inbox, migrations, outbox, quarantine
from fengqiao.cases import store as casestore
from fengqiao.cases.records import Counter
from fengqiao.clock import FakeClock
from fengqiao.db import Database
from fengqiao.divisions import events_stream, own_case_subjects
from fengqiao.models import DeadLetter
from fengqiao.v1 import case_pb2
from services.federation.consumers import subtree_event_handler
from services.intake.store import next_counter
from tests.system.test_county_sync import eventually

VILLAGE = "371702101001"
STREAM = events_stream(VILLAGE)


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[tuple[NATS, JetStreamContext]]:
    nc = await bus.connect(nats_server.url, name="test")
    js = nc.jetstream()
    await bus.ensure_stream(js, name=STREAM, subjects=[own_case_subjects(VILLAGE)])
    try:
        yield nc, js
    finally:
        await nc.close()


@pytest.fixture
def db(database_url: Callable[[str], str]) -> AsyncIterator[Database]:
    database = Database(database_url("node"))
    migrations.upgrade(database.url)
    yield database
    database.close()


def received_event(clock: FakeClock) -> case_pb2.CaseEvent:
    event = case_pb2.CaseEvent(
        id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        seq=1,
        node=VILLAGE,
        actor="test",
        received=case_pb2.Received(
            case=case_pb2.Case(receipt_no=f"R-{uuid.uuid4().hex[:6]}", origin_node=VILLAGE, category="邻里")
        ),
    )
    event.at.FromDatetime(clock.now())
    return event


async def write_cases(db: Database, clock: FakeClock, n: int) -> list[case_pb2.CaseEvent]:
    events = [received_event(clock) for _ in range(n)]
    for event in events:
        await db.run(
            lambda s, e=event: casestore.append_events(
                s, case=None, events=[e], node_code=VILLAGE, headers={}, now=clock.now()
            )
        )
    return events


async def stream_messages(js: JetStreamContext) -> int:
    return (await js.stream_info(STREAM)).state.messages


async def test_crash_between_publish_and_mark_republishes_without_duplicates(
    db: Database, js: tuple[NATS, JetStreamContext]
) -> None:
    _, jsc = js
    clock = FakeClock()
    await write_cases(db, clock, 5)

    async def crash(_ids: list[int]) -> None:
        raise RuntimeError("power cut after JetStream acked, before the rows were marked")

    with pytest.raises(RuntimeError):
        await outbox.OutboxRelay(db=db, js=jsc, after_publish=crash).relay_once()
    assert await db.run(outbox.pending_count) == 5, "nothing may be marked before the mark step"
    assert await stream_messages(jsc) == 5

    assert await outbox.OutboxRelay(db=db, js=jsc).relay_once() == 5
    assert await db.run(outbox.pending_count) == 0
    assert await stream_messages(jsc) == 5, "the re-publish must be deduplicated by Nats-Msg-Id"


async def test_outbox_keeps_events_while_the_broker_is_down_and_sends_them_after(
    db: Database, nats_server: NatsServer, js: tuple[NATS, JetStreamContext]
) -> None:
    _, jsc = js
    clock = FakeClock()
    relay = outbox.OutboxRelay(
        db=db, js=jsc, poll_interval_s=0.1, publish_timeout_s=0.5, max_attempts=2, retry_after_s=0
    )
    nats_server.stop()
    await write_cases(db, clock, 3)
    for _ in range(3):  # more than max_attempts: a broker that is down is no row's fault
        assert await relay.relay_once() == 0
    assert await db.run(outbox.pending_count) == 3
    assert await db.read(quarantine.quarantined) == [], "a broker outage must hold rows back, not quarantine them"

    nats_server.requested_port = nats_server.port
    nats_server.start()
    task = asyncio.create_task(relay.run())
    try:

        async def drained() -> bool:
            return await db.run(outbox.pending_count) == 0

        await eventually(drained, within_s=15, what="outbox drained after the broker came back")
    finally:
        task.cancel()
    assert await stream_messages(jsc) == 3


async def test_redelivered_message_is_applied_once_thanks_to_the_inbox(
    db: Database, js: tuple[NATS, JetStreamContext]
) -> None:
    _, jsc = js
    clock = FakeClock()
    await jsc.publish(f"{own_case_subjects(VILLAGE)[:-1]}received", b"x", headers={bus.MSG_ID: "m-1"})

    consumer = inbox.InboxConsumer(
        js=jsc,
        db=db,
        stream=STREAM,
        durable="counter",
        filter_subjects=[own_case_subjects(VILLAGE)],
        handle=lambda s, _msg: next_counter(s, name="applied") and None,
        now=clock.now,
        ack_wait_s=1.0,
    )
    sub = await consumer.subscribe()
    (msg,) = await sub.fetch(1, timeout=5)
    # The effect commits, then the process dies before acknowledging.
    await db.run(lambda s: consumer.apply(s, msg))
    await sub.unsubscribe()

    task = asyncio.create_task(consumer.run())
    try:

        async def acked() -> bool:
            info = await jsc.consumer_info(STREAM, "counter")
            return info.num_ack_pending == 0 and info.num_pending == 0 and info.delivered.consumer_seq >= 2

        await eventually(acked, within_s=10, what="redelivered message acknowledged")
    finally:
        task.cancel()
    counter = await db.run(lambda s: s.get(Counter, "applied"))
    assert counter is not None and counter.value == 1


async def test_unprocessable_message_becomes_a_dead_letter_and_the_next_one_still_applies(
    db: Database, js: tuple[NATS, JetStreamContext]
) -> None:
    _, jsc = js
    clock = FakeClock()
    subject = f"{own_case_subjects(VILLAGE)[:-1]}received"
    await jsc.publish(subject, b"\xff not a protobuf", headers={bus.MSG_ID: "bad-1"})
    good = received_event(clock)
    await jsc.publish(subject, good.SerializeToString(), headers={bus.MSG_ID: good.id})

    consumer = inbox.InboxConsumer(
        js=jsc,
        db=db,
        stream=STREAM,
        durable="apply",
        filter_subjects=[subject],
        handle=subtree_event_handler(VILLAGE[:9], clock),  # its town
        now=clock.now,
    )
    task = asyncio.create_task(consumer.run())
    try:

        async def applied() -> bool:
            return await db.run(lambda s: casestore.load_case(s, case_id=good.case_id)) is not None

        await eventually(applied, within_s=10, what="the valid event after a broken one is applied")
    finally:
        task.cancel()
    letters = await db.run(lambda s: list(s.exec(select(DeadLetter)).all()))
    assert len(letters) == 1
    assert letters[0].subject == subject and "无法解析" in letters[0].reason
    assert letters[0].data == b"\xff not a protobuf"


def test_fake_clock_only_moves_when_told() -> None:
    clock = FakeClock()
    start = clock.now()
    clock.advance(dt.timedelta(hours=2))
    assert clock.now() - start == dt.timedelta(hours=2)


async def test_a_late_mark_by_a_second_relay_never_deletes_a_new_row_that_took_the_same_id(
    db: Database, js: tuple[NATS, JetStreamContext]
) -> None:
    """Two processes of one node relay one outbox. Relay A sends the newest row and marks later
    (marks are batched); relay B sends and deletes it first; SQLite then gives its id to the next
    row. A's late mark must not delete that new, unsent row: the message would be lost."""
    _nc, jets = js
    clock = FakeClock()
    a = outbox.OutboxRelay(db=db, js=jets)
    b = outbox.OutboxRelay(db=db, js=jets)
    await write_cases(db, clock, 1)
    assert await a.relay_once(mark=False) == 1  # sent, not yet marked
    assert await b.relay_once() == 1  # sent again (a duplicate the stream absorbs) and deleted
    await write_cases(db, clock, 1)
    rows = await db.read(lambda s: outbox.pending(s, limit=10))
    assert len(rows) == 1  # the second event's row (on SQLite it has the first row's id again)

    await a.mark()  # A's late mark of the first row

    left = await db.read(lambda s: outbox.pending(s, limit=10))
    assert [r.message_id for r in left] == [r.message_id for r in rows], "the unsent row was deleted"
    assert await a.relay_once() == 1
    info = await jets.stream_info(STREAM)
    assert info.state.messages == 2  # both events are in the stream, once each


def test_a_message_that_waits_is_retried_quickly_at_first_then_every_two_seconds() -> None:
    delays = [inbox.retry_delay(n) for n in range(1, 12)]
    assert delays[0] == 0.02 and delays == sorted(delays)
    assert delays[-1] == inbox.RETRY_MAX_S == 2.0


async def test_a_message_whose_predecessor_never_comes_does_not_spin(
    db: Database, js: tuple[NATS, JetStreamContext]
) -> None:
    """A 'not yet' is redelivered with a growing delay: over 6 s a handler that always waits sees
    about ten deliveries, not the three hundred a fixed 20 ms would give."""
    _, jsc = js
    clock = FakeClock()
    subject = f"{own_case_subjects(VILLAGE)[:-1]}received"
    await jsc.publish(subject, b"x", headers={bus.MSG_ID: "waits-1"})
    deliveries: list[float] = []

    def waits(_session: Session, _msg: Msg) -> None:
        deliveries.append(time.monotonic())
        raise errors.NotYet("前一事件尚未到达")

    consumer = inbox.InboxConsumer(
        js=jsc, db=db, stream=STREAM, durable="waits", filter_subjects=[subject], handle=waits, now=clock.now
    )
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.sleep(6)
    finally:
        task.cancel()
    assert 5 <= len(deliveries) <= 15, len(deliveries)
    gaps = [b - a for a, b in itertools.pairwise(deliveries)]
    assert max(gaps) >= 1.5, gaps
