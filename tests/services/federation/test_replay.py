"""Figures under disorder: a town's events replayed shuffled, duplicated and with one village a
week late give exactly the figures of a recompute from scratch (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from bench.recompute import expected, observed
from fengqiao import migrations
from fengqiao.cases import store as casestore
from fengqiao.clock import CHINA_TZ
from fengqiao.db import Database
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import federation_pb2
from harness.county import small_county
from services.federation import rules, snapshot, views
from tests.services.federation.townlog import TOWN, VILLAGES, make_logs

START = dt.datetime(2026, 11, 1, tzinfo=CHINA_TZ)
PERIOD = rules.parse_period("2026-11")
LATE = VILLAGES[1]
TOPOLOGY = small_county(towns=1, villages=len(VILLAGES))
WEEK = dt.timedelta(days=7)


@pytest.fixture
def db(database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(database_url("replay"))
    migrations.upgrade(database.url)
    try:
        yield database
    finally:
        database.close()


def deliver(db: Database, events: list[pb.CaseEvent], *, now: dt.datetime) -> None:
    def store(session: object) -> None:
        for event in events:
            casestore.store_replicated(session, event=event, now=now)  # type: ignore[arg-type]

    db.transaction(store)  # type: ignore[arg-type]


def stats(db: Database, *, now: dt.datetime, stale_after: dt.timedelta = WEEK) -> federation_pb2.NodeStats:
    snap = db.transaction(
        lambda s: snapshot.take(s, topology=TOPOLOGY, code=TOWN, period=PERIOD, now=now, stale_after=stale_after)
    )
    return views.node_stats(snap, TOWN, include_children=True)


def test_shuffled_duplicated_and_week_late_replay_equals_recompute_from_scratch(db: Database) -> None:
    logs = make_logs(7, start=START, days=28, per_node=30, late=LATE)
    now = max(e.at.ToDatetime(tzinfo=dt.UTC) for log in logs for e in log.events) + dt.timedelta(hours=1)
    rng = random.Random(11)
    on_time = [e for log in logs if log.events[0].node != LATE for e in log.events]
    late = [e for log in logs if log.events[0].node == LATE for e in log.events]
    stream = on_time + rng.sample(on_time, len(on_time) // 3)  # a third delivered twice
    rng.shuffle(stream)
    deliver(db, stream, now=now - WEEK)

    before = stats(db, now=now, stale_after=dt.timedelta(days=3))
    assert LATE in before.stale_nodes and before.stale_nodes == [LATE]
    assert before.received < sum(log.events[0].node.startswith(TOWN) for log in logs)

    again = late + rng.sample(late, len(late) // 2) + rng.sample(on_time, 50)
    rng.shuffle(again)
    deliver(db, again, now=now)
    after = stats(db, now=now, stale_after=dt.timedelta(days=3))
    assert after.stale_nodes == [] and not after.stale

    assert observed(after) == expected([log.events for log in logs], TOWN, PERIOD, now=now)
    children = {c.code: c for c in after.children}
    for village in VILLAGES:
        assert observed(children[village]) == expected([log.events for log in logs], village, PERIOD, now=now), village
    assert sum(c.received for c in after.children) < after.received  # the town takes cases in itself too
    assert after.received == 4 * 30 and after.closed > 0 and after.overdue > 0 and after.supervised > 0
    assert 0 < after.escalated_to_county.numerator < after.received

    closure = after.closure_rate
    assert (closure.numerator, closure.denominator) == (after.closed, after.received)
    assert closure.value == pytest.approx(after.closed / after.received)


def test_replay_order_does_not_change_any_figure(db: Database, database_url: Callable[[str], str]) -> None:
    logs = make_logs(3, start=START, days=28, per_node=12)
    events = [e for log in logs for e in log.events]
    now = START + dt.timedelta(days=29)
    deliver(db, events, now=now)
    in_order = stats(db, now=now)
    other = Database(database_url("reversed"))
    migrations.upgrade(other.url)
    try:
        deliver(other, list(reversed(events)) + events[:40], now=now)
        assert stats(other, now=now) == in_order
    finally:
        other.close()


def projections(db: Database) -> tuple[list[tuple[object, ...]], list[str]]:
    """Every case projection and every stored event id, in a comparable order."""
    cases = db.transaction(
        lambda s: [tuple(r) for r in s.execute(text("SELECT id, version, holder_node, status, data FROM case_record"))]
    )
    events = db.transaction(lambda s: [r[0] for r in s.execute(text("SELECT id FROM case_event"))])
    return sorted(cases), sorted(events)


def test_batches_store_exactly_what_one_event_at_a_time_stores(
    db: Database, database_url: Callable[[str], str]
) -> None:
    logs = make_logs(5, start=START, days=28, per_node=20, late=LATE)
    events = [e for log in logs for e in log.events]
    rng = random.Random(5)
    stream = events + rng.sample(events, len(events) // 3)  # some twice, some twice in one batch
    rng.shuffle(stream)
    now = START + dt.timedelta(days=29)
    deliver(db, stream, now=now)
    batched = Database(database_url("batched"))
    migrations.upgrade(batched.url)
    try:
        offset = 0
        while offset < len(stream):
            size = rng.choice((1, 7, 64, 256))
            chunk = stream[offset : offset + size]
            offset += size
            batched.transaction(lambda s, c=chunk: casestore.store_replicated_many(s, events=c, now=now))  # type: ignore[misc]
        one_by_one, in_batches = projections(db), projections(batched)
        assert len(one_by_one[0]) == len(logs) and len(one_by_one[1]) == len(events)
        assert in_batches == one_by_one
    finally:
        batched.close()
