"""Storage of the case log and its projection (SQLModel; keyword-only arguments).

The holder appends events with ``append_events`` (event, projection and outbox row in the
caller's transaction); the tiers above store the same events with ``store_replicated``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from sqlmodel import Session, col, or_, select

from fengqiao import lifecycle, outbox
from fengqiao.divisions import case_subject
from fengqiao.errors import InvalidArgument
from fengqiao.models import CaseEventRecord, CaseRecord
from fengqiao.v1 import case_pb2 as pb


def _record_values(case: pb.Case) -> dict[str, object]:
    closed_at = case.updated_at.ToDatetime(tzinfo=dt.UTC) if case.status in lifecycle.CLOSED_STATUSES else None
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
        "alarms_pending": lifecycle.is_open(case)
        and case.HasField("deadline")
        and case.supervised_for != case.deadline,
        "client_request_id": case.client_request_id or None,
        "received_at": case.received_at.ToDatetime(tzinfo=dt.UTC),
        "updated_at": case.updated_at.ToDatetime(tzinfo=dt.UTC),
        "closed_at": closed_at,
        "version": case.version,
        "data": case.SerializeToString(),
    }


def _save_projection(session: Session, case: pb.Case) -> None:
    record = session.get(CaseRecord, case.id)
    values = _record_values(case)
    if record is None:
        session.add(CaseRecord(id=case.id, **values))  # type: ignore[arg-type]
    else:
        for key, value in values.items():
            setattr(record, key, value)
        session.add(record)


def _event_record(event: pb.CaseEvent, *, now: dt.datetime) -> CaseEventRecord:
    return CaseEventRecord(
        id=event.id,
        case_id=event.case_id,
        seq=event.seq,
        node=event.node,
        type=lifecycle.event_type(event),
        at=lifecycle.event_time(event),
        stored_at=now,
        data=event.SerializeToString(),
    )


def load_case(session: Session, *, case_id: str) -> pb.Case | None:
    record = session.get(CaseRecord, case_id)
    return None if record is None else pb.Case.FromString(record.data)


def find_case(session: Session, *, key: str) -> pb.Case | None:
    """A case by id or by 受理编号."""
    record = (
        session.get(CaseRecord, key) or session.exec(select(CaseRecord).where(CaseRecord.receipt_no == key)).first()
    )
    return None if record is None else pb.Case.FromString(record.data)


def find_by_request(session: Session, *, origin_node: str, client_request_id: str) -> pb.Case | None:
    record = session.exec(
        select(CaseRecord).where(
            CaseRecord.origin_node == origin_node, CaseRecord.client_request_id == client_request_id
        )
    ).first()
    return None if record is None else pb.Case.FromString(record.data)


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
    if not events and case is not None:
        return case
    for event in events:
        case = lifecycle.apply(case, event)
        session.add(_event_record(event, now=now))
        outbox.enqueue(
            session,
            subject=case_subject(node_code, lifecycle.event_type(event)),
            message_id=event.id,
            data=event.SerializeToString(),
            headers=headers,
            now=now,
        )
    if case is None:
        raise InvalidArgument("events", "没有要写入的事件")
    _save_projection(session, case)
    return case


def store_replicated(session: Session, *, event: pb.CaseEvent, now: dt.datetime) -> bool:
    """Store an event that arrived from below; fold every contiguous event it unblocks.

    Events may arrive late, twice or out of order: duplicates are ignored and an event whose
    predecessors are missing waits in the log until they come. Returns False for a duplicate.
    """
    if session.get(CaseEventRecord, event.id) is not None:
        return False
    session.add(_event_record(event, now=now))
    session.flush()
    case = load_case(session, case_id=event.case_id)
    version = 0 if case is None else case.version
    if event.seq != version + 1:
        return True
    later = session.exec(
        select(CaseEventRecord)
        .where(CaseEventRecord.case_id == event.case_id, col(CaseEventRecord.seq) > version)
        .order_by(col(CaseEventRecord.seq))
    ).all()
    for record in later:
        if record.seq != version + 1:
            break
        case = lifecycle.apply(case, pb.CaseEvent.FromString(record.data))
        version = record.seq
    if case is not None:
        _save_projection(session, case)
    return True


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


def list_cases(
    session: Session, *, where: CaseFilter, page_size: int = 50, page_token: str = ""
) -> tuple[list[pb.Case], str]:
    """Cases taken in at or below ``where.within``, newest first, with the next page's token."""
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
    record = session.exec(select(CaseRecord).where(CaseRecord.id == case_id).with_for_update()).first()
    return None if record is None else pb.Case.FromString(record.data)


def latest_event_at(session: Session, *, within: str) -> dt.datetime | None:
    """When the newest event from the subtree was written (its own timestamp)."""
    value = session.exec(
        select(CaseEventRecord.at)
        .where(col(CaseEventRecord.node).startswith(within))
        .order_by(col(CaseEventRecord.at).desc())
        .limit(1)
    ).first()
    return None if value is None else value
