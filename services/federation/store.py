"""Federation's queries over the case projection of the subtree (keyword-only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import func
from sqlmodel import Session, col, select

from fengqiao.models import CaseRecord


def count_received(session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> int:
    """Cases taken in at or below ``within`` during [start, end)."""
    query = select(func.count()).where(
        col(CaseRecord.origin_node).startswith(within),
        col(CaseRecord.received_at) >= start,
        col(CaseRecord.received_at) < end,
    )
    return int(session.exec(query).one())


def count_closed(
    session: Session,
    *,
    within: str,
    start: dt.datetime,
    end: dt.datetime,
    statuses: Iterable[int],
) -> int:
    """Cases received during [start, end) that are closed now (办结 or later)."""
    query = select(func.count()).where(
        col(CaseRecord.origin_node).startswith(within),
        col(CaseRecord.received_at) >= start,
        col(CaseRecord.received_at) < end,
        col(CaseRecord.status).in_(list(statuses)),
    )
    return int(session.exec(query).one())
