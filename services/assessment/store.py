"""Assessment's storage (keyword-only)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from services.assessment.models import ProjectRecord


def list_projects(session: Session, *, within: str, limit: int, after: str) -> list[ProjectRecord]:
    """Projects registered at or below ``within``, by id, after the cursor ``after``."""
    query = select(ProjectRecord).where(col(ProjectRecord.node_code).startswith(within))
    if after:
        query = query.where(col(ProjectRecord.id) > after)
    return list(session.exec(query.order_by(col(ProjectRecord.id)).limit(limit)).all())
