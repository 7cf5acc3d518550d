"""Storage of the case log and its projection (SQLModel; keyword-only arguments).

The holder records events with ``append_events`` / ``append_many`` (the ``CaseLog`` of
``fengqiao.eventlog``: event, projection, outbox rows and audit entry in the caller's
transaction); the tiers above store the same events with ``store_replicated``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence

from google.protobuf.message import Message
from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, or_, select

from fengqiao import eventlog, outbox
from fengqiao.cases import audited, factstore, lifecycle
from fengqiao.cases.records import CaseEventRecord, CaseRecord
from fengqiao.divisions import case_subject, down_subject
from fengqiao.errors import BadMessage, IllegalTransition, InvalidArgument, NotFound, NotYet
from fengqiao.security import audit
from fengqiao.v1 import case_pb2 as pb
from fengqiao.writers import FORGED


def _record_values(case: pb.Case) -> dict[str, object]:
    closed_at = case.closed_at.ToDatetime(tzinfo=dt.UTC) if case.HasField("closed_at") else None
    return {
        "receipt_no": case.receipt_no,
        "origin_node": case.origin_node,
        "holder_node": case.holder_node,
        "division_code": case.division_code,
        "category": case.category,
        "status": int(case.status),
        "grid": case.grid,
        "channel": case.channel,
        "response_class": int(case.response_class),
        "deadline": case.deadline.ToDatetime(tzinfo=dt.UTC) if case.HasField("deadline") else None,
        "alarms_pending": lifecycle.alarms_pending(case),
        "client_request_id": case.client_request_id or None,
        "received_at": case.received_at.ToDatetime(tzinfo=dt.UTC),
        "updated_at": case.updated_at.ToDatetime(tzinfo=dt.UTC),
        "closed_at": closed_at,
        "version": case.version,
        "data": case.SerializeToString(),
    }


def _event_values(event: pb.CaseEvent, *, now: dt.datetime) -> dict[str, object]:
    return {
        "id": event.id,
        "case_id": event.case_id,
        "seq": event.seq,
        "node": event.node,
        "type": lifecycle.event_type(event),
        "at": lifecycle.event_time(event),
        "stored_at": now,
        "data": event.SerializeToString(),
    }


def _save_projections(session: Session, changes: Sequence[factstore.Change]) -> None:
    """Insert the projections of new cases and update the others, each in one statement, and
    their figure facts with them: the one place a case projection is written, so no fold can
    leave the facts behind."""
    connection = session.connection()
    new = [c.after for c in changes if c.before is None]
    changed = [c.after for c in changes if c.before is not None]
    if new:
        rows = [{"id": c.id, **_record_values(c)} for c in new]
        connection.execute(insert(CaseRecord.__table__), rows)  # type: ignore[attr-defined]
    if changed:
        table = CaseRecord.__table__  # type: ignore[attr-defined]
        columns = list(_record_values(changed[0]))
        statement = (
            update(table)
            .where(table.c.id == bindparam("case_id"))
            .values({name: bindparam(f"v_{name}") for name in columns})
        )
        rows = [{"case_id": c.id, **{f"v_{k}": v for k, v in _record_values(c).items()}} for c in changed]
        connection.execute(statement, rows)
    factstore.save(connection, changes)


def _insert_events(session: Session, events: Sequence[pb.CaseEvent], *, now: dt.datetime) -> None:
    if events:
        rows = [_event_values(e, now=now) for e in events]
        session.connection().execute(insert(CaseEventRecord.__table__), rows)  # type: ignore[attr-defined]


_CASES = CaseRecord.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEventRecord.__table__  # type: ignore[attr-defined]


def load_case(session: Session, *, case_id: str) -> pb.Case | None:
    data = session.connection().execute(sa_select(_CASES.c.data).where(_CASES.c.id == case_id)).scalar()
    return None if data is None else pb.Case.FromString(data)


def find_case(session: Session, *, key: str) -> pb.Case | None:
    """A case by id or by 受理编号."""
    connection = session.connection()
    data = connection.execute(sa_select(_CASES.c.data).where(_CASES.c.id == key)).scalar()
    if data is None:
        data = connection.execute(sa_select(_CASES.c.data).where(_CASES.c.receipt_no == key).limit(1)).scalar()
    return None if data is None else pb.Case.FromString(data)


Append = eventlog.Append[pb.Case, pb.CaseEvent]
"""Events to append to one case (``state`` is None for a new one), with their trace headers."""


@dataclasses.dataclass(frozen=True)
class CaseLog:
    """The case log of the holder ``node_code``: each event is kept in the case tables and
    published on the holder's subjects — and, for a case from below, down to its origin too,
    which keeps a read-only copy."""

    node_code: str

    def fold(self, state: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
        """The case after ``event`` (the lifecycle checks its writer and its step)."""
        return lifecycle.apply(state, event)

    def save(
        self, session: Session, changes: Sequence[eventlog.Change[pb.Case, pb.CaseEvent]], *, now: dt.datetime
    ) -> list[pb.Case]:
        """Insert every event and every projection, and update the changed ones, a statement each
        for the whole batch (the holder's group commit)."""
        _insert_events(session, [e for c in changes for e in c.events], now=now)
        _save_projections(session, [factstore.Change(c.before, c.after, c.events) for c in changes])
        return [c.after for c in changes]

    def messages(self, state: pb.Case, event: pb.CaseEvent, headers: Mapping[str, str]) -> list[outbox.Message]:
        """The event on the holder's case subject, and down to the origin for a case from below."""
        kind, data = lifecycle.event_type(event), event.SerializeToString()
        messages = [outbox.Message(case_subject(self.node_code, kind), event.id, data, headers)]
        if state.origin_node != self.node_code:
            down = down_subject(self.node_code, state.origin_node, "case", kind)
            messages.append(outbox.Message(down, f"{event.id}:down", data, headers))
        return messages

    def audit_entry(self, state: pb.Case, event: pb.CaseEvent, *, now: dt.datetime) -> audit.Entry:
        """``case.<event type>`` by the event's actor, at the event's own time, chaining the
        content hashes of the event and of the case row after its append (``audited_content``)."""
        return audit.Entry(
            at=lifecycle.event_time(event),
            node=event.node,
            actor=event.actor,
            action=f"case.{lifecycle.event_type(event)}",
            subject=event.case_id,
            detail={"event": event.id, "seq": event.seq, "version": state.version},
            event_sha256=audited.event_hash(event),  # of what _event_values stores, sealed value left out
            state_sha256=audited.state_hash(state),  # of what _record_values stores, sealed value left out
        )


def append_many(session: Session, *, appends: Sequence[Append], node_code: str, now: dt.datetime) -> list[pb.Case]:
    """Record each append's events onto its case (``eventlog.record`` with the ``CaseLog``):
    events, projections, outbox rows and audit entries of the whole batch in a handful of
    statements."""
    return eventlog.record(session, CaseLog(node_code), appends, now=now)


def append_events(
    session: Session,
    *,
    case: pb.Case | None,
    events: Sequence[pb.CaseEvent],
    node_code: str,
    headers: Mapping[str, str],
    now: dt.datetime,
) -> pb.Case:
    """Fold ``events`` onto ``case`` and store them with their outbox rows (holder only)."""
    (result,) = append_many(session, appends=[Append(case, events, headers)], node_code=node_code, now=now)
    return result


def store_replicated(session: Session, *, event: pb.CaseEvent, now: dt.datetime) -> bool:
    """Store an event that arrived from another tier; fold every contiguous event it unblocks.

    Events may arrive late, twice or out of order: duplicates are ignored and an event whose
    predecessors are missing waits in the log until they come. Returns False for a duplicate.
    """
    return store_replicated_many(session, events=[event], now=now) == 1


def store_replicated_many(session: Session, *, events: Sequence[pb.CaseEvent], now: dt.datetime) -> int:
    """``store_replicated`` for a batch, in a handful of statements instead of five per event:
    the same duplicates ignored, the same waiting for predecessors, the same folds. Returns
    how many events were new."""
    connection = session.connection()
    ids = list(dict.fromkeys(e.id for e in events))
    known = set(connection.execute(sa_select(_EVENTS.c.id).where(_EVENTS.c.id.in_(ids))).scalars())
    fresh = list({e.id: e for e in events if e.id not in known}.values())
    if not fresh:
        return 0
    _insert_events(session, fresh, now=now)
    affected = list(dict.fromkeys(e.case_id for e in fresh))
    cases = {
        case_id: pb.Case.FromString(data)
        for case_id, data in connection.execute(sa_select(_CASES.c.id, _CASES.c.data).where(_CASES.c.id.in_(affected)))
    }
    # every stored event not yet folded into its case: this batch's and any that came early.
    # Read whole before folding: a fold that raises must not leave the query open, which on
    # SQLite (WAL) would pin the pooled connection to this moment's snapshot.
    unfolded = connection.execute(
        sa_select(_EVENTS.c.case_id, _EVENTS.c.seq, _EVENTS.c.data)
        .select_from(_EVENTS.outerjoin(_CASES, _CASES.c.id == _EVENTS.c.case_id))
        .where(_EVENTS.c.case_id.in_(affected), _EVENTS.c.seq > func.coalesce(_CASES.c.version, 0))
        .order_by(_EVENTS.c.case_id, _EVENTS.c.seq)
    ).all()
    folded: dict[str, pb.Case] = {}
    applied: dict[str, list[pb.CaseEvent]] = {}
    for case_id, seq, data in unfolded:
        case = folded.get(case_id) or cases.get(case_id)
        if seq != (case.version if case is not None else 0) + 1:
            continue  # waits for its predecessors
        event = pb.CaseEvent.FromString(data)
        folded[case_id] = lifecycle.apply(case, event)
        applied.setdefault(case_id, []).append(event)
    _save_projections(session, [factstore.Change(cases.get(i), after, applied[i]) for i, after in folded.items()])
    return len(fresh)


def check_replicated(
    session: Session, *, events: Sequence[pb.CaseEvent], check: Callable[[int, pb.Case | None], None]
) -> None:
    """Before storing replicated ``events``: call ``check(i, case)`` with each new event's index and
    the case it applies to as known here (None before its first event), folding the batch in order.

    So every event is checked against the state it follows, and nothing unchecked ever waits in
    the log: one ahead of its predecessor waits in the stream (``NotYet``); one whose place in the
    case is taken by another event would fork it (``BadMessage``); one the fold refuses raises as
    the fold does. Events already stored (or earlier in the batch) were checked then: skipped."""
    connection = session.connection()
    case_ids = list(dict.fromkeys(e.case_id for e in events))
    running: dict[str, pb.Case | None] = {
        case_id: pb.Case.FromString(data)
        for case_id, data in connection.execute(sa_select(_CASES.c.id, _CASES.c.data).where(_CASES.c.id.in_(case_ids)))
    }
    # Read after the cases: an event another process stored meanwhile (a node's services apart)
    # then shows as here already, never as a fork.
    ids = list(dict.fromkeys(e.id for e in events))
    seen = set(connection.execute(sa_select(_EVENTS.c.id).where(_EVENTS.c.id.in_(ids))).scalars())
    placed: dict[tuple[str, int], pb.CaseEvent] = {}  # the places this batch filled
    for i, event in enumerate(events):
        if event.id in seen:
            continue
        case = running.get(event.case_id)
        version = case.version if case is not None else 0
        if event.seq > version + 1:
            raise NotYet(f"案件 {event.case_id} 的事件 {event.seq} 早于 {version + 1} 到达")
        if event.seq <= version:
            author = _other_writer(session, event, placed)
            if author is None:
                continue  # this very event, stored meanwhile
            raise BadMessage(_fork(event, author))
        check(i, case)
        running[event.case_id] = lifecycle.apply(case, event)
        placed[(event.case_id, event.seq)] = event
        seen.add(event.id)


def _other_writer(session: Session, event: pb.CaseEvent, placed: Mapping[tuple[str, int], pb.CaseEvent]) -> str | None:
    """Who wrote the other event at ``event``'s place in its case ("" if unknown); None if the
    event there is ``event`` itself."""
    other = placed.get((event.case_id, event.seq))
    if other is not None:
        return None if other.id == event.id else other.node
    query = sa_select(_EVENTS.c.id, _EVENTS.c.node).where(
        _EVENTS.c.case_id == event.case_id, _EVENTS.c.seq == event.seq
    )
    row = session.connection().execute(query).first()
    if row is None:
        return ""
    return None if row.id == event.id else str(row.node)


def _fork(event: pb.CaseEvent, author: str) -> str:
    """Why ``event`` may not take a place another event of its case already holds."""
    place = f"案件 {event.case_id} 的第 {event.seq} 号事件已由另一事件（{author or '未知中心'}）写入"
    if author != event.node:
        return f"{FORGED}{event.node} 发出的案件事件与已有事件冲突：{place}"
    return f"案件事件与已有事件冲突：{place}"


def list_events(session: Session, *, case_id: str) -> list[pb.CaseEvent]:
    records = session.exec(
        select(CaseEventRecord).where(CaseEventRecord.case_id == case_id).order_by(col(CaseEventRecord.seq))
    ).all()
    return [pb.CaseEvent.FromString(r.data) for r in records]


def _encode_cursor(record: CaseRecord) -> str:
    raw = f"{record.received_at.isoformat()}|{record.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(token: str) -> tuple[dt.datetime, str]:
    try:
        when, case_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return dt.datetime.fromisoformat(when), case_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("page_token", "分页标记无效") from exc


@dataclasses.dataclass(frozen=True)
class CaseFilter:
    """What a case list may be narrowed by; empty fields do not filter."""

    within: str
    category: str = ""
    status: int = 0
    grid: str = ""
    channel: str = ""
    response_class: int = 0
    holder_node: str = ""
    overdue_at: dt.datetime | None = None  # only open cases past their deadline at this time
    received_from: dt.datetime | None = None
    received_to: dt.datetime | None = None


def _utc(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _listed_by_facts(
    session: Session, *, where: CaseFilter, page_size: int, page_token: str
) -> tuple[list[pb.Case], str]:
    """``list_cases`` for the filters the facts hold: the page's ids from the narrow fact rows
    (an index by category or by origin and time), then those cases' projections."""
    f = factstore.CASE_FACTS.c
    query = sa_select(f.case_id, f.received_us).where(f.origin_node.startswith(where.within, autoescape=True))
    if where.within:
        query = query.where(f.origin_node >= where.within)
    for column, value in ((f.category, where.category), (f.status, where.status), (f.grid, where.grid)):
        if value:
            query = query.where(column == value)
    if where.overdue_at is not None:
        query = query.where(f.open_deadline_us < factstore.micros(_utc(where.overdue_at)))
    if where.received_from is not None:
        query = query.where(f.received_us >= factstore.micros(_utc(where.received_from)))
    if where.received_to is not None:
        query = query.where(f.received_us < factstore.micros(_utc(where.received_to)))
    if page_token:
        when, case_id = _decode_cursor(page_token)
        us = factstore.micros(_utc(when))
        query = query.where(or_(f.received_us < us, (f.received_us == us) & (f.case_id < case_id)))
    query = query.order_by(f.received_us.desc(), f.case_id.desc()).limit(page_size + 1)
    connection = session.connection()
    rows = connection.execute(query).all()
    ids = [case_id for case_id, _ in rows[:page_size]]
    found = connection.execute(sa_select(_CASES.c.id, _CASES.c.data).where(_CASES.c.id.in_(ids)))
    data: dict[str, bytes] = {case_id: blob for case_id, blob in found}
    token = ""
    if len(rows) > page_size:
        case_id, us = rows[page_size - 1]
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
        token = base64.urlsafe_b64encode(f"{at.isoformat()}|{case_id}".encode()).decode()
    return [pb.Case.FromString(data[i]) for i in ids], token


def list_cases(
    session: Session, *, where: CaseFilter, page_size: int = 50, page_token: str = ""
) -> tuple[list[pb.Case], str]:
    """Cases taken in at or below ``where.within``, newest first, with the next page's token."""
    if not (where.channel or where.response_class or where.holder_node):
        return _listed_by_facts(session, where=where, page_size=page_size, page_token=page_token)
    query = select(CaseRecord).where(col(CaseRecord.origin_node).startswith(where.within))
    for column, value in (
        (CaseRecord.category, where.category),
        (CaseRecord.status, where.status),
        (CaseRecord.grid, where.grid),
        (CaseRecord.channel, where.channel),
        (CaseRecord.response_class, where.response_class),
        (CaseRecord.holder_node, where.holder_node),
    ):
        if value:
            query = query.where(column == value)
    if where.overdue_at is not None:
        query = query.where(
            col(CaseRecord.deadline) < where.overdue_at,
            col(CaseRecord.status).not_in([int(s) for s in lifecycle.CLOSED_STATUSES]),
        )
    if where.received_from is not None:
        query = query.where(col(CaseRecord.received_at) >= where.received_from)
    if where.received_to is not None:
        query = query.where(col(CaseRecord.received_at) < where.received_to)
    if page_token:
        when, case_id = _decode_cursor(page_token)
        query = query.where(
            or_(
                col(CaseRecord.received_at) < when,
                (col(CaseRecord.received_at) == when) & (col(CaseRecord.id) < case_id),
            )
        )
    query = query.order_by(col(CaseRecord.received_at).desc(), col(CaseRecord.id).desc()).limit(page_size + 1)
    records = list(session.exec(query).all())
    token = _encode_cursor(records[page_size - 1]) if len(records) > page_size else ""
    return [pb.Case.FromString(r.data) for r in records[:page_size]], token


def with_alarms_pending(session: Session, *, holder_node: str, limit: int = 1000) -> list[pb.Case]:
    """Open cases held here whose current deadline has not yet been 督办 (for the clock watch)."""
    records = session.exec(
        select(CaseRecord)
        .where(CaseRecord.holder_node == holder_node, col(CaseRecord.alarms_pending).is_(True))
        .order_by(col(CaseRecord.deadline))
        .limit(limit)
    ).all()
    return [pb.Case.FromString(r.data) for r in records]


def load_for_update(session: Session, *, case_id: str) -> pb.Case | None:
    """The case, locking its row until the transaction ends (PostgreSQL; SQLite has one writer)."""
    query = sa_select(_CASES.c.data).where(_CASES.c.id == case_id).with_for_update()
    data = session.connection().execute(query).scalar()
    return None if data is None else pb.Case.FromString(data)


Steps = Callable[[pb.Case], Sequence[tuple[str, Message]]]


def _new_event(case: pb.Case, *, offset: int, node_code: str, actor: str, now: dt.datetime) -> pb.CaseEvent:
    event = pb.CaseEvent(id=str(uuid.uuid4()), case_id=case.id, seq=case.version + offset, node=node_code, actor=actor)
    event.at.FromDatetime(now)
    return event


def advance(
    session: Session,
    *,
    case_id: str,
    node_code: str,
    actor: str,
    steps: Steps,
    now: dt.datetime,
    headers: Mapping[str, str],
    expected_version: int = 0,
) -> pb.Case:
    """Append, as events of ``node_code`` by ``actor``, the steps that ``steps`` gives for the
    case's current state: ``(payload field, payload)`` pairs, e.g. ``("triaged", Triaged(...))``.

    Only the holder may advance a case — and the center an escalation is addressed to may
    accept or refuse it; the fold checks each event's writer.
    """
    case = load_for_update(session, case_id=case_id)
    if case is None:
        raise NotFound(f"案件 {case_id} 不存在或不在本中心辖区")
    if node_code not in (case.holder_node, case.escalation_to):
        raise IllegalTransition(f"案件由 {case.holder_node} 承办，只有承办中心可以推进")
    if expected_version and case.version != expected_version:
        raise IllegalTransition(
            f"案件已被他人更新（当前版本 {case.version}，请求版本 {expected_version}），请刷新后重试"
        )
    events = []
    for offset, (field, payload) in enumerate(steps(case), start=1):
        event = _new_event(case, offset=offset, node_code=node_code, actor=actor, now=now)
        getattr(event, field).CopyFrom(payload)
        events.append(event)
    return append_events(session, case=case, events=events, node_code=node_code, headers=headers, now=now)
