"""Recording an event: the one step every writer takes, in the caller's transaction.

``record`` folds each event onto the state of what it changes, has the kind's ``Log`` store the
events and projections, queues every outbox message in one statement and chains every audit
entry at once, so events, projection, messages and trail commit or fail together (as
pyeventsourcing's ``Application.save`` hands every pending event to one recorder). A kind of log
— cases, projects, directives, joint cases, risk alerts — supplies only what is its own: how an
event folds, which tables keep it, where it is published and how the trail names it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, Literal, Protocol, TypeVar

from sqlmodel import Session

from fengqiao import outbox
from fengqiao.divisions import event_subject
from fengqiao.errors import InvalidArgument
from fengqiao.security import audit

S = TypeVar("S")
E = TypeVar("E")
_S = TypeVar("_S")
_E_co = TypeVar("_E_co", covariant=True)
_E_contra = TypeVar("_E_contra", contravariant=True)


@dataclasses.dataclass
class Append(Generic[S, E]):
    """Events to append to one thing (``state`` is None for a new one), with their trace headers."""

    state: S | None
    events: Sequence[E]
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Change(Generic[S, _E_co]):
    """An append folded: the state before its events (None for a new thing) and after them."""

    before: S | None
    after: S
    events: Sequence[_E_co]


class Log(Protocol[_S, _E_contra]):
    """What a kind of event log supplies to ``record``."""

    def fold(self, state: _S | None, event: _E_contra) -> _S:
        """The state after ``event``; raises a ``FengqiaoError`` when the event may not apply."""
        ...

    def save(self, session: Session, changes: Sequence[Change[_S, _E_contra]], *, now: dt.datetime) -> list[_S]:
        """Store the events and the projections of ``changes``; each state as stored, in order."""
        ...

    def messages(self, state: _S, event: _E_contra, headers: Mapping[str, str]) -> Iterable[outbox.Message]:
        """What to publish for ``event`` (``state`` is the thing as stored)."""
        ...

    def audit_entry(self, state: _S, event: _E_contra, *, now: dt.datetime) -> audit.Entry:
        """How the audit trail records ``event``."""
        ...


class Event(Protocol):
    """What the helpers below read of an event (every event message has these fields)."""

    @property
    def id(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def actor(self) -> str: ...

    def WhichOneof(self, oneof_group: Literal["payload"]) -> str | None: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


def published(event: Event, kind: str, headers: Mapping[str, str], *, data: bytes | None = None) -> outbox.Message:
    """``event`` on its writer's own subject of ``kind`` (``event_subject``), under its own id."""
    subject = event_subject(event.node, kind, event.WhichOneof("payload") or "")
    return outbox.Message(subject, event.id, event.SerializeToString() if data is None else data, headers)


def chained(event: Event, kind: str, subject: str, *, at: dt.datetime) -> audit.Entry:
    """The audit entry ``<kind>.<event type>`` of ``event``'s actor at its node, about ``subject``,
    chaining the content hash of the event."""
    action = f"{kind}.{event.WhichOneof('payload')}"
    sha = audit.content_hash(event.SerializeToString())
    return audit.Entry(at, event.node, event.actor, action, subject, event_sha256=sha)


_Ev = TypeVar("_Ev", bound=Event)


@dataclasses.dataclass(frozen=True)
class Kind(Generic[S, _Ev]):
    """The usual log: ``fold`` folds, ``keep`` stores one event with the state after it, and each
    event is published on its writer's own subject of kind ``name`` and chained as
    ``<name>.<event type>`` about ``about(event)`` (the id of what it changes)."""

    name: str
    fold: Callable[[S | None, _Ev], S]
    keep: Callable[[Session, S, _Ev, dt.datetime], None]
    about: Callable[[_Ev], str]

    def save(self, session: Session, changes: Sequence[Change[S, _Ev]], *, now: dt.datetime) -> list[S]:
        """``keep`` each event with the state after its append."""
        for change in changes:
            for event in change.events:
                self.keep(session, change.after, event, now)
        return [c.after for c in changes]

    def messages(self, state: S, event: _Ev, headers: Mapping[str, str]) -> list[outbox.Message]:
        """The event on its writer's own subject."""
        return [published(event, self.name, headers)]

    def audit_entry(self, state: S, event: _Ev, *, now: dt.datetime) -> audit.Entry:
        """``<name>.<event type>`` by the event's actor, now."""
        return chained(event, self.name, self.about(event), at=now)


def record(session: Session, log: Log[S, E], appends: Sequence[Append[S, E]], *, now: dt.datetime) -> list[S]:
    """Fold each append's events onto its state and store events, projections, outbox messages
    and audit entries of the whole batch in the caller's transaction; returns each append's
    state afterwards (as it was, for an append without events)."""
    folded: list[S] = []
    for append in appends:
        state = append.state
        for event in append.events:
            state = log.fold(state, event)
        if state is None:
            raise InvalidArgument("events", "没有要写入的事件")
        folded.append(state)
    writing = [i for i, append in enumerate(appends) if append.events]
    changes = [Change(appends[i].state, folded[i], appends[i].events) for i in writing]
    stored = log.save(session, changes, now=now) if changes else []
    messages: list[outbox.Message] = []
    entries: list[audit.Entry] = []
    for i, state in zip(writing, stored, strict=True):
        folded[i] = state
        for event in appends[i].events:
            entry = log.audit_entry(state, event, now=now)
            # keyed by what the event changes (the entry's subject), so the relay keeps its order
            messages.extend(m._replace(aggregate=entry.subject) for m in log.messages(state, event, appends[i].headers))
            entries.append(entry)
    outbox.enqueue_many(session, messages=messages, now=now)
    audit.record(session, entries)
    return folded


def record_one(
    session: Session, log: Log[S, E], state: S | None, event: E, *, headers: Mapping[str, str], now: dt.datetime
) -> S:
    """``record`` of one event onto ``state`` (loaded by the caller, locked where it must be)."""
    (result,) = record(session, log, [Append(state, [event], headers)], now=now)
    return result
