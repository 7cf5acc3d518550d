"""Federation's queries over the figure facts, the case projection and log of the subtree
(keyword-only).

The figures are SQL sums over the fact rows the case store keeps beside each projection
(``fengqiao.cases.factstore``): a cohort is the rows whose origin lies at or below a node
(division-code prefix) and whose 受理 time, in microseconds since the epoch, lies in the
period — exact on every database. One row per origin node comes back; the rollup to every
node of the subtree is the pure ``figures.rollup``.

The reads of whole cases and logs narrow by origin prefix and a received-at window widened by
a day on each side (so the way a database stores aware datetimes cannot drop a case at a
period's edge); the exact period test is made on the case itself, in UTC.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, text
from sqlalchemy import select as sa_select
from sqlmodel import Session

from fengqiao.cases.factstore import ASSIGNMENTS, CALLS, CASE_FACTS, micros
from fengqiao.cases.records import CaseEventRecord, CaseRecord
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2
from services.federation import figures, rankings

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


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _next_prefix(code: str) -> str | None:
    """The least string above every string starting with ``code`` (digits), None if none is."""
    digits = code.rstrip("9")
    return digits[:-1] + chr(ord(digits[-1]) + 1) if digits else None


def _cohort(
    table: object, *, within: str, start: dt.datetime, end: dt.datetime, by: str = ""
) -> list[ColumnElement[bool]]:
    """Rows of cases taken in at or below ``within`` during [start, end): a range on the
    origin's code narrowed to the prefix, and the 受理 time. ``by`` ("origin" or "period")
    leaves the other range unusable for an index (``x || ''``, ``x + 0``: the same values), so
    SQLite, which keeps no statistics, reads the index that suits."""
    c = table.c  # type: ignore[attr-defined]
    origin = c.origin_node + "" if by == "period" else c.origin_node
    received = c.received_us + 0 if by == "origin" else c.received_us
    where = [origin >= within, c.origin_node.startswith(within, autoescape=True)]
    upper = _next_prefix(within)
    if upper is not None:
        where.append(origin < upper)
    where.append(received >= micros(start.astimezone(dt.UTC)))
    if end.astimezone(dt.UTC) < _FAR:
        where.append(received < micros(end.astimezone(dt.UTC)))
    return where


_SHORT = dt.timedelta(days=100)


def _index_for(within: str, start: dt.datetime, end: dt.datetime) -> str:
    """Which covering index a cohort's sums are best read from: by period
    (``ix_case_fact_period``) for a short period of a county or wider, else by origin
    (``ix_case_fact_cohort``, rows already in origin order for the GROUP BY)."""
    return "period" if len(within) <= 6 and end - start <= _SHORT else "origin"


def tallies_by_origin(
    session: Session, *, within: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> dict[str, figures.Tally]:
    """The tally of each origin node at or below ``within`` of its cases received in [start,
    end), as of ``now`` (overdue), summed in SQL over the case facts."""
    f = CASE_FACTS.c
    village, town = int(common_pb2.TIER_VILLAGE), int(common_pb2.TIER_TOWN)
    query = (
        sa_select(
            f.origin_node,
            func.count(),
            func.sum(f.closed),
            func.sum(f.on_time),
            func.sum(f.mediated),
            func.sum(f.followed_up),
            func.sum(f.satisfaction),
            func.sum(f.handling_seconds),
            _flag(f.resolved_tier == village),
            _flag(f.resolved_tier.in_([village, town])),
            func.sum(f.at_county),
            _flag(f.open_deadline_us < micros(now)),
            func.sum(f.supervised),
            func.sum(f.escalated),
        )
        .where(*_cohort(CASE_FACTS, within=within, start=start, end=end, by=_index_for(within, start, end)))
        .group_by(f.origin_node)
    )
    return {
        origin: figures.Tally(*(int(v or 0) for v in sums)) for origin, *sums in session.connection().execute(query)
    }


def counts_by(session: Session, *, within: str, start: dt.datetime, end: dt.datetime, key: str) -> dict[object, int]:
    """Cases received in [start, end) at or below ``within`` by one fact column (``category``)
    or by local (China) day (``day``: days since the epoch)."""
    f = CASE_FACTS.c
    column = (f.received_us + _CHINA_OFFSET_US) / _DAY_US if key == "day" else f[key]
    query = (
        sa_select(column.label("key"), func.count())
        .where(*_cohort(CASE_FACTS, within=within, start=start, end=end))
        .group_by("key")
    )
    return {k: int(n) for k, n in session.connection().execute(query)}


_DAY_US = 86_400_000_000
_CHINA_OFFSET_US = 8 * 3_600_000_000


def department_tallies(
    session: Session, *, within: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[rankings.DepartmentTally]:
    """``rankings.department_tallies`` of the cohort, summed in SQL over the assignment and
    call facts, as of ``now``."""
    a, c, at = ASSIGNMENTS.c, CALLS.c, micros(now)
    assignments = (
        sa_select(
            a.department,
            func.count(),
            func.sum(a.acknowledged),
            func.sum(a.returned),
            func.sum(a.on_time),
            _flag(or_(a.closed == 1, and_(a.returned == 0, a.escalated_away == 0, a.deadline_us < at))),
            func.sum(a.satisfaction),
            _flag(a.satisfaction != 0),
        )
        .where(*_cohort(ASSIGNMENTS, within=within, start=start, end=end))
        .group_by(a.department)
    )
    due = or_(c.reported_us.is_not(None), c.report_by_us < at)
    calls = (
        sa_select(c.department, _flag(due), _flag(and_(c.reported_us.is_not(None), c.reported_us <= c.report_by_us)))
        .where(c.report_by_us.is_not(None), *_cohort(CALLS, within=within, start=start, end=end))
        .group_by(c.department)
    )
    connection = session.connection()
    tallies = {
        d: rankings.DepartmentTally(d, *(int(v or 0) for v in sums)) for d, *sums in connection.execute(assignments)
    }
    for department, called, in_time in connection.execute(calls):
        if called:
            t = tallies.setdefault(department, rankings.DepartmentTally(department))
            t.calls, t.reported_in_time = int(called), int(in_time)
    return sorted(tallies.values(), key=lambda t: t.department)


def grid_worker_tallies(
    session: Session, *, within: str, start: dt.datetime, end: dt.datetime
) -> list[rankings.GridWorkerTally]:
    """``rankings.grid_worker_tallies`` of the cohort, summed in SQL over the case facts."""
    f = CASE_FACTS.c
    query = (
        sa_select(
            f.grid_worker,
            f.origin_node,
            f.grid,
            func.count(),
            func.sum(f.closed),
            func.sum(f.satisfaction),
            func.sum(f.followed_up),
        )
        .where(f.grid_worker != "", *_cohort(CASE_FACTS, within=within, start=start, end=end))
        .group_by(f.grid_worker, f.origin_node, f.grid)
        .order_by(f.grid_worker, f.origin_node, f.grid)
    )
    tallies: dict[tuple[str, str], rankings.GridWorkerTally] = {}
    for worker, node, grid, reports, closed, score, scored in session.connection().execute(query):
        t = tallies.setdefault((worker, node), rankings.GridWorkerTally(worker, node, grids=Counter()))
        t.reports += int(reports)
        t.closed += int(closed or 0)
        t.satisfaction_sum += int(score or 0)
        t.satisfaction_count += int(scored or 0)
        t.grids[grid] += int(reports)
    return sorted(tallies.values(), key=lambda t: (t.node, t.grid_worker))


def received_days(
    session: Session, *, within: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[str, str, dt.datetime]]:
    """(origin, category, 受理 time) of the cases received in [start, end) at or below ``within``."""
    f = CASE_FACTS.c
    query = sa_select(f.origin_node, f.category, f.received_us).where(
        *_cohort(CASE_FACTS, within=within, start=start, end=end)
    )
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return [
        (origin, category, epoch + dt.timedelta(microseconds=us))
        for origin, category, us in session.connection().execute(query)
    ]


def latest_of(session: Session, *, nodes: Sequence[str]) -> dict[str, dt.datetime]:
    """The time of the newest event each of ``nodes`` has written (as stored here): one index
    probe per node (``ix_case_event_node_at``), in one statement per few hundred nodes."""
    latest: dict[str, dt.datetime] = {}
    for first in range(0, len(nodes), _PROBES):
        chunk = nodes[first : first + _PROBES]
        sql = " UNION ALL ".join(
            f"SELECT :n{i}, (SELECT max(at) FROM case_event WHERE node = :n{i})" for i in range(len(chunk))
        )
        rows = session.connection().execute(text(sql), {f"n{i}": node for i, node in enumerate(chunk)})
        latest.update(_newest(rows))
    return latest


_PROBES = 400  # SQLite takes at most 500 terms in one compound SELECT


def _newest(rows: Iterable[Any]) -> dict[str, dt.datetime]:
    latest: dict[str, dt.datetime] = {}
    for node, at in rows:
        if at is None:
            continue
        if isinstance(at, str):  # SQLite without type information on an aggregate
            at = dt.datetime.fromisoformat(at)
        latest[node] = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return latest
