"""Recording events: ``eventlog.record`` folds every event, has the log save the whole batch once,
and writes every outbox message and audit entry in the caller's transaction — or nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest
from sqlmodel import Session, col, select

from fengqiao import eventlog, migrations, outbox
from fengqiao.db import Database
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.models import OutboxRecord
from fengqiao.security import audit

TOWN = "371702101"
NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


class Tally:
    """A toy log: the state is the tuple of notes so far; a note "bad" may never apply."""

    def __init__(self) -> None:
        self.saved: list[list[eventlog.Change[tuple[str, ...], str]]] = []

    def fold(self, state: tuple[str, ...] | None, event: str) -> tuple[str, ...]:
        if event == "bad":
            raise IllegalTransition("不能记下 bad")
        return (*(state or ()), event)

    def save(
        self, session: Session, changes: Sequence[eventlog.Change[tuple[str, ...], str]], *, now: dt.datetime
    ) -> list[tuple[str, ...]]:
        self.saved.append(list(changes))
        return [(*c.after, "saved") for c in changes]

    def messages(self, state: tuple[str, ...], event: str, headers: Mapping[str, str]) -> list[outbox.Message]:
        return [outbox.Message(f"fq.371702.{TOWN}._.note.{event}", f"{event}@{len(state)}", event.encode(), headers)]

    def audit_entry(self, state: tuple[str, ...], event: str, *, now: dt.datetime) -> audit.Entry:
        return audit.Entry(now, TOWN, "值班员", f"note.{event}", ",".join(state))


@pytest.fixture
def db(database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(database_url("eventlog"))
    migrations.upgrade(database.url)
    yield database
    database.close()


def written(db: Database) -> tuple[list[str], list[str]]:
    """The outbox's message ids and the audit trail's actions, in order."""

    def read(session: Session) -> tuple[list[str], list[str]]:
        ids = session.exec(select(OutboxRecord.message_id).order_by(col(OutboxRecord.id))).all()
        actions = session.exec(select(audit.AuditRecord.action).order_by(col(audit.AuditRecord.id))).all()
        return list(ids), list(actions)

    return db.transaction(read)


def test_a_batch_is_folded_saved_once_and_its_messages_and_trail_written_in_order(db: Database) -> None:
    log = Tally()
    appends = [
        eventlog.Append(None, ["a", "b"], {"traceparent": "x"}),
        eventlog.Append(("old",), []),  # nothing to record: returned as it is
        eventlog.Append(("old",), ["c"]),
    ]
    states = db.transaction(lambda s: eventlog.record(s, log, appends, now=NOW))

    assert states == [("a", "b", "saved"), ("old",), ("old", "c", "saved")]
    (changes,) = log.saved
    assert [(c.before, c.after, list(c.events)) for c in changes] == [
        (None, ("a", "b"), ["a", "b"]),
        (("old",), ("old", "c"), ["c"]),
    ]
    ids, actions = written(db)
    assert ids == ["a@3", "b@3", "c@3"]  # messages see the state as saved
    assert actions == ["note.a", "note.b", "note.c"]
    assert db.transaction(audit.verify) == (3, None)


def test_an_event_that_may_not_apply_records_nothing_of_the_batch(db: Database) -> None:
    log = Tally()
    with pytest.raises(IllegalTransition):
        db.transaction(
            lambda s: eventlog.record(s, log, [eventlog.Append(None, ["a"]), eventlog.Append(None, ["bad"])], now=NOW)
        )
    assert log.saved == [] and written(db) == ([], [])


def test_a_new_thing_needs_an_event(db: Database) -> None:
    with pytest.raises(InvalidArgument, match="没有要写入的事件"):
        db.transaction(lambda s: eventlog.record(s, Tally(), [eventlog.Append(None, [])], now=NOW))


def test_record_one_is_a_batch_of_one(db: Database) -> None:
    state = db.transaction(lambda s: eventlog.record_one(s, Tally(), ("old",), "d", headers={}, now=NOW))
    assert state == ("old", "d", "saved") and written(db) == (["d@3"], ["note.d"])
