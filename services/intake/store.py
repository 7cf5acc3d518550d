"""Intake's storage: taking a case in, once, with its receipt number (keyword-only)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import text
from sqlmodel import Session

from fengqiao import casestore
from fengqiao.errors import IllegalTransition, NotFound
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
    deadline: dt.datetime,
    now: dt.datetime,
    headers: Mapping[str, str],
) -> tuple[case_pb2.Case, bool]:
    """Take a validated request in; returns the case and whether it was a retry."""
    existing = casestore.find_by_request(session, origin_node=node_code, client_request_id=request.client_request_id)
    if existing is not None:
        return existing, True
    day = rules.receipt_day(now)
    seq = next_counter(session, name=f"receipt:{day}")
    intake = rules.new_case(request, node_code=node_code, receipt=rules.receipt_no(node_code, day, seq))
    intake.clock_start.FromDatetime(now)
    intake.deadline.FromDatetime(deadline)
    event = case_pb2.CaseEvent(
        id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        seq=1,
        node=node_code,
        actor=actor,
        received=case_pb2.Received(case=intake),
    )
    event.at.FromDatetime(now)
    case = casestore.append_events(session, case=None, events=[event], node_code=node_code, headers=headers, now=now)
    return case, False


StepBuilder = Callable[[case_pb2.Case], Sequence[case_pb2.CaseEvent]]


def new_event(case: case_pb2.Case, *, offset: int, node_code: str, actor: str, now: dt.datetime) -> case_pb2.CaseEvent:
    """An empty event for ``case`` numbered ``offset`` after its current version."""
    event = case_pb2.CaseEvent(
        id=str(uuid.uuid4()), case_id=case.id, seq=case.version + offset, node=node_code, actor=actor
    )
    event.at.FromDatetime(now)
    return event


def advance(
    session: Session,
    *,
    case_id: str,
    node_code: str,
    expected_version: int,
    build: StepBuilder,
    now: dt.datetime,
    headers: Mapping[str, str],
) -> case_pb2.Case:
    """Append the events ``build`` makes for the case's current state (holder only)."""
    case = casestore.load_for_update(session, case_id=case_id)
    if case is None or (not case.origin_node.startswith(node_code) and case.holder_node != node_code):
        raise NotFound(f"案件 {case_id} 不存在或不在本中心辖区")
    if case.holder_node != node_code:
        raise IllegalTransition(f"案件由 {case.holder_node} 承办，只有承办中心可以推进")
    if expected_version and case.version != expected_version:
        raise IllegalTransition(
            f"案件已被他人更新（当前版本 {case.version}，请求版本 {expected_version}），请刷新后重试"
        )
    return casestore.append_events(
        session, case=case, events=build(case), node_code=node_code, headers=headers, now=now
    )
