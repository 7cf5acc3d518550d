"""The audit trail: every state change and every read of personal data, in an append-only,
hash-chained log (docs/ARCHITECTURE.md, *Security*).

Each row's hash is sha256 over the previous row's hash and the row's own fields, so editing,
removing or inserting a row breaks the chain at that row; ``verify`` walks it and names the
first broken link (``fengqiao audit verify``). Rows are written in the transaction of the
change they record. On PostgreSQL an advisory lock orders concurrent writers; on SQLite the
single writer does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence

from sqlalchemy import insert, text
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel

GENESIS = "0" * 64
_LOCK = 7170202  # pg_advisory_xact_lock key of the chain


class AuditRecord(SQLModel, table=True):
    """One link of the chain. Never updated, never deleted."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: str = Field(max_length=40)  # ISO 8601, UTC: hashed exactly as stored
    node: str = Field(max_length=12)
    actor: str = Field(max_length=80)
    action: str = Field(max_length=60)  # e.g. case.triaged, pii.read
    subject: str = Field(max_length=80)  # what it concerns: a case id, a user …
    detail: str = ""  # JSON, never personal data itself
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


@dataclasses.dataclass(frozen=True)
class Entry:
    """What happened, to be chained."""

    at: dt.datetime
    node: str
    actor: str
    action: str
    subject: str
    detail: dict[str, object] = dataclasses.field(default_factory=dict)


def digest(prev_hash: str, at: str, node: str, actor: str, action: str, subject: str, detail: str) -> str:
    """The hash of a row: sha256 of the canonical JSON of the previous hash and its fields."""
    canonical = json.dumps(
        [prev_hash, at, node, actor, action, subject, detail], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_TABLE = AuditRecord.__table__  # type: ignore[attr-defined]


def record(session: Session, entries: Sequence[Entry]) -> None:
    """Append ``entries`` to the chain in the caller's transaction."""
    if not entries:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK})"))
    head = connection.execute(sa_select(_TABLE.c.hash).order_by(_TABLE.c.id.desc()).limit(1)).scalar()
    prev = head or GENESIS
    rows = []
    for entry in entries:
        at = entry.at.astimezone(dt.UTC).isoformat()
        detail = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        fields = {"at": at, "node": entry.node, "actor": entry.actor[:80], "action": entry.action}
        fields |= {"subject": entry.subject, "detail": detail}
        hashed = digest(prev, *fields.values())
        rows.append({**fields, "prev_hash": prev, "hash": hashed})
        prev = hashed
    connection.execute(insert(_TABLE), rows)


@dataclasses.dataclass(frozen=True)
class Broken:
    """The first link that does not hold, and why."""

    row_id: int
    reason: str


def _rows(session: Session, batch: int = 5000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        page = session.exec(
            sa_select(AuditRecord).where(_TABLE.c.id > last).order_by(_TABLE.c.id).limit(batch)  # type: ignore[call-overload]
        ).all()
        if not page:
            return
        for (row,) in page:
            yield row
        last = page[-1][0].id


def verify(session: Session) -> tuple[int, Broken | None]:
    """Walk the chain from the start: how many rows hold, and the first broken link if any."""
    prev, count = GENESIS, 0
    for row in _rows(session):
        if row.prev_hash != prev:
            return count, Broken(int(row.id or 0), "与上一条记录的哈希不衔接（有记录被删除、插入或改动）")
        expected = digest(row.prev_hash, row.at, row.node, row.actor, row.action, row.subject, row.detail)
        if row.hash != expected:
            return count, Broken(int(row.id or 0), "记录内容与其哈希不符（该条记录被改动）")
        prev, count = row.hash, count + 1
    return count, None
