"""Federation's queries over the case projection and log of the subtree (keyword-only).

The SQL narrows by origin prefix and a received-at window widened by a day on each side (so
the way a database stores aware datetimes cannot drop a case at a period's edge); the exact
period test is made on the case itself, in UTC.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from fengqiao.cases.records import CaseEventRecord, CaseRecord
from fengqiao.v1 import case_pb2 as pb

_CASES = CaseRecord.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEventRecord.__table__  # type: ignore[attr-defined]
_MARGIN = dt.timedelta(days=1)
_FAR = dt.datetime(9998, 1, 1, tzinfo=dt.UTC)


def _window(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    low = start.astimezone(dt.UTC) - _MARGIN
    high = min(end.astimezone(dt.UTC), _FAR) + _MARGIN
    return low, high


def _in_period(case: pb.Case, start: dt.datetime, end: dt.datetime) -> bool:
    return start <= case.received_at.ToDatetime(tzinfo=dt.UTC) < end


def cases_received(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> list[pb.Case]:
    """The cases taken in at or below ``within`` during [start, end), in their current state."""
    low, high = _window(start, end)
    query = sa_select(_CASES.c.data).where(
        _CASES.c.origin_node.startswith(within), _CASES.c.received_at >= low, _CASES.c.received_at < high
    )
    cases = (pb.Case.FromString(data) for data in session.connection().execute(query).scalars())
    return [c for c in cases if _in_period(c, start, end)]


def case_logs(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> dict[str, list[pb.CaseEvent]]:
    """The event logs (in sequence order) of the cases taken in at or below ``within`` during
    [start, end), by case id; the first event of a log is its 受理, which tells when."""
    low, high = _window(start, end)
    query = (
        sa_select(_EVENTS.c.case_id, _EVENTS.c.data)
        .select_from(_EVENTS.join(_CASES, _CASES.c.id == _EVENTS.c.case_id))
        .where(_CASES.c.origin_node.startswith(within), _CASES.c.received_at >= low, _CASES.c.received_at < high)
        .order_by(_EVENTS.c.case_id, _EVENTS.c.seq)
    )
    logs: dict[str, list[pb.CaseEvent]] = {}
    skipped: set[str] = set()
    for case_id, data in session.connection().execute(query):
        if case_id in skipped:
            continue
        event = pb.CaseEvent.FromString(data)
        if case_id not in logs:
            if not (event.seq == 1 and start <= event.at.ToDatetime(tzinfo=dt.UTC) < end):
                skipped.add(case_id)
                continue
            logs[case_id] = []
        logs[case_id].append(event)
    return logs


def latest_by_node(session: Session, *, within: str) -> dict[str, dt.datetime]:
    """The time of the newest event each node at or below ``within`` has written (as stored here)."""
    query = (
        sa_select(_EVENTS.c.node, func.max(_EVENTS.c.at))
        .where(_EVENTS.c.node.startswith(within))
        .group_by(_EVENTS.c.node)
    )
    latest = {}
    for node, at in session.connection().execute(query):
        if isinstance(at, str):  # SQLite without type information on an aggregate
            at = dt.datetime.fromisoformat(at)
        latest[node] = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return latest
