"""Intake's storage: taking cases in, in batches (group commit; keyword-only arguments)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import select, text
from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.cases.records import CaseRecord
from fengqiao.security.sealing import Keyring
from fengqiao.v1 import case_pb2, intake_pb2
from services.intake import rules


def next_counter(session: Session, *, name: str, step: int = 1) -> int:
    """Add ``step`` to a named counter and return its new value (safe under concurrent writers)."""
    row = session.execute(
        text("UPDATE counter SET value = value + :step WHERE name = :name RETURNING value"),
        {"name": name, "step": step},
    ).first()
    if row is not None:
        return int(row[0])
    session.execute(text("INSERT INTO counter (name, value) VALUES (:name, :step)"), {"name": name, "step": step})
    return step


@dataclasses.dataclass(frozen=True)
class Submission:
    """A validated intake request with what the handler decided for it."""

    request: intake_pb2.SubmitCaseRequest
    actor: str
    deadline: dt.datetime
    headers: Mapping[str, str]


def existing_requests(session: Session, *, origin_node: str, request_ids: Sequence[str]) -> dict[str, case_pb2.Case]:
    """Cases already taken in here for these client request ids."""
    table = CaseRecord.__table__  # type: ignore[attr-defined]
    rows = session.connection().execute(
        select(table.c.client_request_id, table.c.data).where(
            table.c.origin_node == origin_node, table.c.client_request_id.in_(list(request_ids))
        )
    )
    return {request_id: case_pb2.Case.FromString(data) for request_id, data in rows}


def submit_batch(
    session: Session, *, submissions: Sequence[Submission], node_code: str, now: dt.datetime, key: Keyring
) -> list[tuple[case_pb2.Case, bool]]:
    """Take a batch of requests in, in one transaction; a retried request id gets its first case.
    The parties and address are sealed with the county's ``key`` before anything is stored."""
    ids = [s.request.client_request_id for s in submissions]
    seen = existing_requests(session, origin_node=node_code, request_ids=ids)
    fresh: dict[str, Submission] = {}
    for sub in submissions:
        if sub.request.client_request_id not in seen:
            fresh.setdefault(sub.request.client_request_id, sub)
    day = rules.receipt_day(now)
    last = next_counter(session, name=f"receipt:{day}", step=len(fresh)) if fresh else 0
    appends = []
    for seq, sub in enumerate(fresh.values(), start=last - len(fresh) + 1):
        intake = rules.new_case(sub.request, node_code=node_code, receipt=rules.receipt_no(node_code, day, seq))
        intake.clock_start.FromDatetime(now)
        intake.deadline.FromDatetime(sub.deadline)
        key.seal(intake)
        event = case_pb2.CaseEvent(
            id=str(uuid.uuid4()),
            case_id=str(uuid.uuid4()),
            seq=1,
            node=node_code,
            actor=sub.actor,
            received=case_pb2.Received(case=intake),
        )
        event.at.FromDatetime(now)
        appends.append(casestore.Append(None, [event], sub.headers))
    created = casestore.append_many(session, appends=appends, node_code=node_code, now=now)
    by_request = dict(zip(fresh, created, strict=True))
    results = []
    for sub in submissions:
        rid = sub.request.client_request_id
        if rid in seen:
            results.append((seen[rid], True))
        else:
            results.append((by_request[rid], fresh[rid] is not sub))
    return results
