"""Storage of the figure facts (``fengqiao.cases.facts``) beside the case projection.

``save`` is called by the one place that writes case projections (``fengqiao.cases.store``),
in the same transaction, for every fold: intake, steps, escalations, replication. So the facts
are always those of the projection. ``rebuild`` recomputes every fact row from the event logs
(after a change of a definition in ``facts``, or by the migration that brought the tables),
a batch of cases per transaction, resumable: the number of cases done is kept in the
``counter`` table until it ends.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy import bindparam as param

from fengqiao.cases import facts, lifecycle
from fengqiao.cases.records import (
    AssignmentFactRecord,
    CallFactRecord,
    CaseEventRecord,
    CaseFactRecord,
    CaseRecord,
    Counter,
)
from fengqiao.errors import FengqiaoError
from fengqiao.v1 import case_pb2 as pb

CASE_FACTS = CaseFactRecord.__table__  # type: ignore[attr-defined]
ASSIGNMENTS = AssignmentFactRecord.__table__  # type: ignore[attr-defined]
CALLS = CallFactRecord.__table__  # type: ignore[attr-defined]
_CASES = CaseRecord.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEventRecord.__table__  # type: ignore[attr-defined]
_COUNTER = Counter.__table__  # type: ignore[attr-defined]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
REBUILD_COUNTER = "figures.rebuild"


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


def _track_rows(case: pb.Case, track: facts.Track) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
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
        a, c = _track_rows(cases[case_id], track)
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


def facts_from_log(events: Iterable[pb.CaseEvent]) -> tuple[pb.Case | None, facts.Track]:
    """The case folded from its log (its contiguous prefix, as the projection) and its track."""
    case: pb.Case | None = None
    track = facts.Track()
    for event in events:
        try:
            case = lifecycle.apply(case, event)
        except FengqiaoError:
            break  # a gap: the events after it wait, as in the projection
        if event.WhichOneof("payload") in facts.TRACKED:
            track.step(case, event)
    return case, track


Rows = tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]
"""Fact rows: of cases, of assignments, of calls."""

Logs = list[tuple[str, list[bytes]]]
"""Case ids with their events as stored, in sequence order."""


def fact_rows(logs: Logs) -> Rows:
    """The fact rows of each case folded from its log, with each case's version (pure: runs in
    a worker process of ``rebuild``)."""
    cases: list[dict[str, object]] = []
    assignments: list[dict[str, object]] = []
    calls: list[dict[str, object]] = []
    for _case_id, log in logs:
        case, track = facts_from_log(pb.CaseEvent.FromString(data) for data in log)
        if case is None:
            continue
        cases.append({**case_values(case), "version": case.version})
        a, c = _track_rows(case, track)
        assignments += a
        calls += c
    return cases, assignments, calls


def _read_logs(connection: Connection, ids: Sequence[str]) -> Logs:
    logs: dict[str, list[bytes]] = {case_id: [] for case_id in ids}
    query = (
        select(_EVENTS.c.case_id, _EVENTS.c.data)
        .where(_EVENTS.c.case_id.in_(list(ids)))
        .order_by(_EVENTS.c.case_id, _EVENTS.c.seq)
    )
    for case_id, data in connection.execute(query):
        logs[case_id].append(data)
    return list(logs.items())


def _write_rows(connection: Connection, ids: Sequence[str], rows: Rows) -> None:
    """Replace the fact rows of ``ids`` by ``rows`` — redone here from the logs as they are now
    for any case a fold changed since ``rows`` were made (its projection row locked meanwhile)."""
    locked = select(_CASES.c.id, _CASES.c.version).where(_CASES.c.id.in_(list(ids))).with_for_update()
    versions: dict[str, int] = {case_id: version for case_id, version in connection.execute(locked)}
    cases, assignments, calls = rows
    made = {str(c["case_id"]): c["version"] for c in cases}
    stale = [case_id for case_id, version in versions.items() if made.get(case_id) != version]
    if stale:
        fresh = fact_rows(_read_logs(connection, [str(i) for i in stale]))
        gone = set(stale)
        cases = [c for c in cases if c["case_id"] not in gone] + fresh[0]
        assignments = [a for a in assignments if a["case_id"] not in gone] + fresh[1]
        calls = [c for c in calls if c["case_id"] not in gone] + fresh[2]
    for table in (CASE_FACTS, ASSIGNMENTS, CALLS):
        connection.execute(delete(table).where(table.c.case_id.in_(list(ids))))
    for table, values in (
        (CASE_FACTS, [{k: v for k, v in c.items() if k != "version"} for c in cases]),
        (ASSIGNMENTS, assignments),
        (CALLS, calls),
    ):
        if values:
            connection.execute(insert(table), values)


def rebuild_batch(connection: Connection, case_ids: Sequence[str]) -> None:
    """Recompute the fact rows of ``case_ids`` from their event logs (in this transaction)."""
    _write_rows(connection, case_ids, fact_rows(_read_logs(connection, case_ids)))


@dataclasses.dataclass(frozen=True)
class Progress:
    done: int
    total: int


def rebuild_done(connection: Connection) -> int:
    """How many cases an unfinished rebuild has done (0: none is under way)."""
    value = connection.execute(select(_COUNTER.c.value).where(_COUNTER.c.name == REBUILD_COUNTER)).scalar()
    return int(value or 0)


def rebuild(
    begin: Callable[[], Any],
    *,
    batch: int = 1000,
    restart: bool = False,
    workers: int = 0,
    progress: Callable[[Progress], None] = lambda p: None,
) -> Progress:
    """Recompute every fact row from the event logs, ``batch`` cases per transaction, in the
    order of their ids; ``begin()`` gives a context manager yielding a connection in a new
    transaction. Resumes where an unfinished rebuild stopped unless ``restart``. The folds run
    in ``workers`` processes (0: in this one) while this one reads and writes; cases added
    meanwhile get their facts from their own fold, and a case changed meanwhile is redone when
    written."""
    with begin() as connection:
        total = int(connection.execute(select(func.count()).select_from(_CASES)).scalar() or 0)
        done = 0 if restart else rebuild_done(connection)
        after: str | None = None
        if done:
            after = connection.execute(select(_CASES.c.id).order_by(_CASES.c.id).offset(done - 1).limit(1)).scalar()
    progress(Progress(done, total))

    def read() -> tuple[list[str], Logs]:
        nonlocal after
        with begin() as connection:
            query = select(_CASES.c.id).order_by(_CASES.c.id).limit(batch)
            if after is not None:
                query = query.where(_CASES.c.id > after)
            ids = list(connection.execute(query).scalars())
            logs = _read_logs(connection, ids) if ids else []
        if ids:
            after = ids[-1]
        return ids, logs

    def write(ids: list[str], rows: Rows) -> None:
        nonlocal done
        with begin() as connection:
            _write_rows(connection, ids, rows)
            done += len(ids)
            _set_counter(connection, done)
        progress(Progress(done, max(total, done)))

    if workers <= 0:
        while True:
            ids, logs = read()
            if not ids:
                break
            write(ids, fact_rows(logs))
    else:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            running: collections.deque[tuple[list[str], concurrent.futures.Future[Rows]]] = collections.deque()
            while True:
                ids, logs = read()
                if ids:
                    running.append((ids, pool.submit(fact_rows, logs)))
                if running and (not ids or len(running) > workers):
                    first, rows = running.popleft()
                    write(first, rows.result())
                if not ids and not running:
                    break
    with begin() as connection:
        connection.execute(delete(_COUNTER).where(_COUNTER.c.name == REBUILD_COUNTER))
    return Progress(done, max(total, done))


def _set_counter(connection: Connection, value: int) -> None:
    updated = connection.execute(
        update(_COUNTER).where(_COUNTER.c.name == REBUILD_COUNTER).values(value=value)
    ).rowcount
    if not updated:
        connection.execute(insert(_COUNTER).values(name=REBUILD_COUNTER, value=value))
