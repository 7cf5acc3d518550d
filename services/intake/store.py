"""Intake's storage: taking a case in, once, with its receipt number (keyword-only)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

from sqlalchemy import text
from sqlmodel import Session

from fengqiao import casestore
from fengqiao.v1 import case_pb2, intake_pb2
from services.intake import rules


def next_counter(session: Session, *, name: str) -> int:
    """Increment a named counter and return its new value (safe under concurrent writers)."""
    row = session.execute(
        text("UPDATE counter SET value = value + 1 WHERE name = :name RETURNING value"), {"name": name}
    ).first()
    if row is not None:
        return int(row[0])
    session.execute(text("INSERT INTO counter (name, value) VALUES (:name, 1)"), {"name": name})
    return 1


def submit(
    session: Session,
    *,
    request: intake_pb2.SubmitCaseRequest,
    node_code: str,
    actor: str,
    now: dt.datetime,
    headers: Mapping[str, str],
) -> tuple[case_pb2.Case, bool]:
    """Take a validated request in; returns the case and whether it was a retry."""
    existing = casestore.find_by_request(
        session, origin_node=node_code, client_request_id=request.client_request_id
    )
    if existing is not None:
        return existing, True
    day = rules.receipt_day(now)
    seq = next_counter(session, name=f"receipt:{day}")
    intake = rules.new_case(request, node_code=node_code, receipt=rules.receipt_no(node_code, day, seq))
    event = case_pb2.CaseEvent(
        id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        seq=1,
        node=node_code,
        actor=actor,
        received=case_pb2.Received(case=intake),
    )
    event.at.FromDatetime(now)
    case = casestore.append_events(
        session, case=None, events=[event], node_code=node_code, headers=headers, now=now
    )
    return case, False
