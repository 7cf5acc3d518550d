"""Storage of the figure facts (``fengqiao.cases.facts``) beside the case projection.

``save`` is called by the one place that writes case projections (``fengqiao.cases.store``),
in the same transaction, for every fold: intake, steps, escalations, replication. So the facts
are always those of the projection. ``fengqiao.cases.rebuild`` recomputes them from the event
logs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy import bindparam as param

from fengqiao.cases import facts, lifecycle
from fengqiao.cases.records import AssignmentFactRecord, CallFactRecord, CaseFactRecord
from fengqiao.v1 import case_pb2 as pb

CASE_FACTS = CaseFactRecord.__table__  # type: ignore[attr-defined]
ASSIGNMENTS = AssignmentFactRecord.__table__  # type: ignore[attr-defined]
CALLS = CallFactRecord.__table__  # type: ignore[attr-defined]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def micros(at: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact)."""
    return (at - _EPOCH) // _US


def _micros(at: dt.datetime | None) -> int | None:
    return None if at is None else micros(at)


def _at(us: int | None) -> dt.datetime | None:
    return None if us is None else _EPOCH + dt.timedelta(microseconds=us)


@dataclasses.dataclass(frozen=True)
class Change:
    """A case before some events (None for a new one), after them, and the events."""

    before: pb.Case | None
    after: pb.Case
    events: Sequence[pb.CaseEvent]


def case_values(case: pb.Case) -> dict[str, object]:
    """The ``case_fact`` row of a case as folded (``facts.facts_of`` with overdue left to the query)."""
    f = facts.facts_of(case, now=_EPOCH)
    return {
        "case_id": case.id,
        "origin_node": f.origin,
        "received_us": micros(f.received_at),
        "category": f.category,
        "status": int(case.status),
        "closed": int(f.closed),
        "on_time": int(f.on_time),
        "mediated": int(f.mediated),
        "followed_up": int(f.followed_up),
        "satisfaction": f.satisfaction,
        "handling_seconds": f.handling_seconds,
        "resolved_tier": f.resolved_tier,
        "at_county": int(f.at_county),
        "open_deadline_us": _micros(facts.open_deadline(case)),
        "supervised": int(f.supervised),
        "escalated": int(f.escalated),
        "grid_worker": facts.grid_worker_of(case),
        "grid": case.grid,
    }


def track_rows(case: pb.Case, track: facts.Track) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    cohort = {
        "case_id": case.id,
        "origin_node": case.origin_node,
        "received_us": micros(case.received_at.ToDatetime(tzinfo=dt.UTC)),
    }
    assignments = [
        {
            **cohort,
            "ordinal": i,
            "department": a.department,
            "acknowledged": int(a.acknowledged),
            "returned": int(a.returned),
            "escalated_away": int(a.escalated_away),
            "closed": int(a.closed_on_time is not None),
            "on_time": int(bool(a.closed_on_time)),
            "deadline_us": _micros(a.deadline),
            "satisfaction": a.satisfaction,
            "current": int(i == track.current),
            "closer": int(i == track.closer),
        }
        for i, a in enumerate(track.assignments)
    ]
    calls = [
        {
            **cohort,
            "department": c.department,
            "report_by_us": _micros(c.report_by),
            "reported_us": _micros(c.reported_at),
        }
        for c in track.calls
    ]
    return assignments, calls


def _load_tracks(connection: Connection, case_ids: list[str]) -> dict[str, facts.Track]:
    tracks = {case_id: facts.Track() for case_id in case_ids}
    query = (
        select(ASSIGNMENTS)
        .where(ASSIGNMENTS.c.case_id.in_(case_ids))
        .order_by(ASSIGNMENTS.c.case_id, ASSIGNMENTS.c.ordinal)
    )
    for row in connection.execute(query):
        track = tracks[row.case_id]
        if row.current:
            track.current = len(track.assignments)
        if row.closer:
            track.closer = len(track.assignments)
        track.assignments.append(
            facts.Assignment(
                row.department,
                acknowledged=bool(row.acknowledged),
                returned=bool(row.returned),
                escalated_away=bool(row.escalated_away),
                closed_on_time=bool(row.on_time) if row.closed else None,
                deadline=_at(row.deadline_us),
                satisfaction=row.satisfaction,
            )
        )
    for row in connection.execute(select(CALLS).where(CALLS.c.case_id.in_(case_ids))):
        tracks[row.case_id].calls.append(facts.Call(row.department, _at(row.report_by_us), _at(row.reported_us)))
    for track in tracks.values():
        track.calls.sort(key=lambda c: c.department)
    return tracks


def _replace_tracks(connection: Connection, cases: dict[str, pb.Case], tracks: dict[str, facts.Track]) -> None:
    ids = list(tracks)
    connection.execute(delete(ASSIGNMENTS).where(ASSIGNMENTS.c.case_id.in_(ids)))
    connection.execute(delete(CALLS).where(CALLS.c.case_id.in_(ids)))
    assignments: list[dict[str, object]] = []
    calls: list[dict[str, object]] = []
    for case_id, track in tracks.items():
        a, c = track_rows(cases[case_id], track)
        assignments += a
        calls += c
    if assignments:
        connection.execute(insert(ASSIGNMENTS), assignments)
    if calls:
        connection.execute(insert(CALLS), calls)


def save(connection: Connection, changes: Sequence[Change]) -> None:
    """Bring the facts of the changed cases up to date with their projections (in the caller's
    transaction): insert the new cases' rows, update the others', and follow the events that
    change assignments and calls from the rows stored."""
    new = [case_values(c.after) for c in changes if c.before is None]
    if new:
        connection.execute(insert(CASE_FACTS), new)
    changed = [c.after for c in changes if c.before is not None]
    if changed:
        columns = [k for k in case_values(changed[0]) if k != "case_id"]
        statement = (
            update(CASE_FACTS)
            .where(CASE_FACTS.c.case_id == param("k_case_id"))
            .values({name: param(f"v_{name}") for name in columns})
        )
        rows = [
            {"k_case_id": c.id, **{f"v_{k}": v for k, v in case_values(c).items() if k != "case_id"}} for c in changed
        ]
        connection.execute(statement, rows)
    tracked = [c for c in changes if any(e.WhichOneof("payload") in facts.TRACKED for e in c.events)]
    if not tracked:
        return
    tracks = _load_tracks(connection, [c.after.id for c in tracked if c.before is not None])
    for c in tracked:
        track = tracks.setdefault(c.after.id, facts.Track())
        state = c.before
        for event in c.events:
            state = lifecycle.apply(state, event)
            if event.WhichOneof("payload") in facts.TRACKED:
                track.step(state, event)
    _replace_tracks(connection, {c.after.id: c.after for c in tracked}, tracks)
