"""Recomputing the figure facts from the event logs: after a change of a definition in
``fengqiao.cases.facts`` (``fengqiao figures rebuild``), or by the migration that brought the
fact tables. A batch of cases per transaction, in the order of their ids, resumable: the number
of cases done is kept in the ``counter`` table until it ends. The folds may run in worker
processes while this one reads and writes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from fengqiao.cases import facts, factstore, lifecycle
from fengqiao.cases.records import CaseEventRecord, CaseRecord, Counter
from fengqiao.errors import FengqiaoError
from fengqiao.v1 import case_pb2 as pb

_CASES = CaseRecord.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEventRecord.__table__  # type: ignore[attr-defined]
_COUNTER = Counter.__table__  # type: ignore[attr-defined]
REBUILD_COUNTER = "figures.rebuild"


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
        cases.append({**factstore.case_values(case), "version": case.version})
        a, c = factstore.track_rows(case, track)
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
    for table in (factstore.CASE_FACTS, factstore.ASSIGNMENTS, factstore.CALLS):
        connection.execute(delete(table).where(table.c.case_id.in_(list(ids))))
    for table, values in (
        (factstore.CASE_FACTS, [{k: v for k, v in c.items() if k != "version"} for c in cases]),
        (factstore.ASSIGNMENTS, assignments),
        (factstore.CALLS, calls),
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
