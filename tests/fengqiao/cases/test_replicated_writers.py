"""Replicated case events are checked against the case just before them, as known here, before
they are stored: a batch folds in order (so the town's steps after its acceptance are its own), an
event ahead of its predecessor waits in the stream, one whose place is taken would fork the case,
and one from a node that does not hold the case is forged — none of them is stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from nats.aio.msg import Msg

from fengqiao import migrations
from fengqiao.cases import store as casestore
from fengqiao.db import Database
from fengqiao.decode import Decoder, Envelope, authorized_steps
from fengqiao.divisions import event_subject
from fengqiao.errors import BadMessage, NotYet
from fengqiao.v1 import case_pb2 as pb
from tests.fengqiao.cases.test_escalation_lifecycle import by, escalate
from tests.fengqiao.cases.test_lifecycle import TOWN, VILLAGE, Story, ts

SIBLING = f"{TOWN}002"
NOW = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
DECODE = Decoder(pb.CaseEvent, "案件事件", required=("id", "case_id", "seq"))


@pytest.fixture
def db(database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(database_url("replicated"))
    migrations.upgrade(database.url)
    yield database
    database.close()


def envelope(event: pb.CaseEvent) -> Envelope[pb.CaseEvent]:
    """The event as it arrives, on its writer's own subject."""
    subject = event_subject(event.node, "case", event.WhichOneof("payload") or "")
    return DECODE(Msg(_client=None, subject=subject, data=event.SerializeToString()))  # type: ignore[arg-type]


def receive(db: Database, events: list[pb.CaseEvent]) -> None:
    """What the subtree sync does with a batch: check, then store."""

    def apply(session: object) -> None:
        authorized_steps(session, [envelope(e) for e in events])  # type: ignore[arg-type]
        casestore.store_replicated_many(session, events=events, now=NOW)  # type: ignore[arg-type]

    db.transaction(apply)


def stored(db: Database, case_id: str) -> list[tuple[int, str]]:
    return [(e.seq, e.node) for e in db.transaction(lambda s: casestore.list_events(s, case_id=case_id))]


def escalated_story() -> tuple[Story, list[pb.CaseEvent]]:
    """Received and triaged at the village, escalated, accepted by the town, triaged there."""
    story = Story()
    story.run("triaged")
    escalate(story)
    accepted = by(
        story, TOWN, "escalation_accepted", pb.EscalationAccepted(deadline=ts(story.at + dt.timedelta(days=1)))
    )
    story.case = casestore.lifecycle.apply(story.case, accepted)
    story.events.append(accepted)
    triaged = by(story, TOWN, "triaged", story.events[1].triaged)
    triaged.id = "town-triaged"
    story.events.append(triaged)
    return story, story.events


def test_a_batch_folds_in_order_so_the_new_holders_steps_are_its_own(db: Database) -> None:
    story, events = escalated_story()
    receive(db, events)
    receive(db, events)  # again: already here, nothing checked twice
    assert stored(db, story.case.id) == [(1, VILLAGE), (2, VILLAGE), (3, VILLAGE), (4, TOWN), (5, TOWN)]


def test_an_event_ahead_of_its_predecessor_waits_in_the_stream_not_in_the_log(db: Database) -> None:
    story, events = escalated_story()
    receive(db, events[:2])
    with pytest.raises(NotYet, match="早于 3 到达"):
        receive(db, [events[3]])
    assert stored(db, story.case.id) == [(1, VILLAGE), (2, VILLAGE)]
    receive(db, events[2:])
    assert len(stored(db, story.case.id)) == 5


def test_a_step_by_a_node_not_holding_the_case_is_forged_and_stored_nowhere(db: Database) -> None:
    story, events = escalated_story()
    receive(db, events[:3])  # escalating to the town, still held by the village
    for node, step in ((SIBLING, "escalation_accepted"), (VILLAGE, "escalation_accepted"), (SIBLING, "triaged")):
        payload = events[3].escalation_accepted if step == "escalation_accepted" else events[1].triaged
        forged = by(story, node, step, payload)
        forged.seq, forged.id = 4, f"forged-{node}-{step}"
        with pytest.raises(BadMessage, match=f"^伪造或越权：案件事件（{step}）由 {node} 发出，只有"):
            receive(db, [forged])
    # And at the end of a batch of genuine events: the whole batch waits, the forged one is refused.
    late = by(story, SIBLING, "triaged", events[1].triaged)
    late.seq, late.id = 6, "forged-after-acceptance"
    with pytest.raises(BadMessage, match=f"只有承办中心 {TOWN} 可以写入"):
        receive(db, [*events[3:], late])
    assert stored(db, story.case.id) == [(1, VILLAGE), (2, VILLAGE), (3, VILLAGE)]
    receive(db, events[3:])
    assert stored(db, story.case.id)[-1] == (5, TOWN)


def test_a_second_event_at_a_place_already_written_would_fork_the_case(db: Database) -> None:
    story, events = escalated_story()
    receive(db, events[:2])
    other = by(story, SIBLING, "triaged", events[1].triaged)
    other.seq, other.id = 2, "fork-by-sibling"
    with pytest.raises(
        BadMessage, match=f"^伪造或越权：{SIBLING} 发出的案件事件与已有事件冲突：.*已由另一事件（{VILLAGE}）写入"
    ):
        receive(db, [other])
    again = by(story, VILLAGE, "triaged", events[1].triaged)
    again.seq, again.id = 2, "fork-by-holder"
    with pytest.raises(BadMessage, match=r"^案件事件与已有事件冲突"):
        receive(db, [again])
    assert stored(db, story.case.id) == [(1, VILLAGE), (2, VILLAGE)]
