"""The audit trail: every state change and every read of personal data, in an append-only,
hash-chained log (docs/ARCHITECTURE.md, *Security*).

Each row's hash is sha256 over the previous row's hash and the row's own fields, so editing,
removing or inserting a row breaks the chain at that row. Rows of format 2 also chain the
content hashes of what they record — the event as stored and the state (the case row) after it —
so an edit of stored event or case data no longer matches its row (``fengqiao.cases.store.
audited_content`` compares them). Rows of format 1, written by earlier releases, keep their own
formula and still verify.

A chain alone does not stop someone who can write the database from rewriting a row and
re-hashing everything after it, or cutting off the tail: every node therefore signs a
checkpoint of its head and sends it to its parent (``fengqiao.security.checkpoints``), and
``verify`` checks the chain against the checkpoints the parent holds.

Rows are written in the transaction of the change they record. Appends are serialised across
the processes of one node before the head is read: on PostgreSQL by an advisory lock, on SQLite
by a statement that takes the database's write lock first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import insert, text
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel

GENESIS = "0" * 64
_LOCK = 7170202  # pg_advisory_xact_lock key of the chain
FORMAT = 2
"""The row format written now: 2 chains the content hashes; 1 is the earlier releases'."""


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
    format: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    event_sha256: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    state_sha256: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})


@dataclasses.dataclass(frozen=True)
class Entry:
    """What happened, to be chained; ``event_sha256`` and ``state_sha256`` are the content
    hashes of the event and of the state after it as stored (``content_hash``), empty when the
    entry records no event (a read, a login)."""

    at: dt.datetime
    node: str
    actor: str
    action: str
    subject: str
    detail: dict[str, object] = dataclasses.field(default_factory=dict)
    event_sha256: str = ""
    state_sha256: str = ""


def content_hash(data: bytes) -> str:
    """The content hash the chain keeps of a stored event or state: sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def digest(prev_hash: str, at: str, node: str, actor: str, action: str, subject: str, detail: str) -> str:
    """The hash of a row of format 1: sha256 of the canonical JSON of the previous hash and its fields."""
    canonical = json.dumps(
        [prev_hash, at, node, actor, action, subject, detail], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def digest_v2(
    prev_hash: str, at: str, node: str, actor: str, action: str, subject: str, detail: str, event: str, state: str
) -> str:
    """The hash of a row of format 2: as format 1, tagged, with the two content hashes."""
    fields = [FORMAT, prev_hash, at, node, actor, action, subject, detail, event, state]
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def row_hash(row: AuditRecord) -> str:
    """What ``row``'s hash must be, by the formula of its format."""
    if row.format == 1:
        return digest(row.prev_hash, row.at, row.node, row.actor, row.action, row.subject, row.detail)
    fields = (row.at, row.node, row.actor, row.action, row.subject, row.detail)
    return digest_v2(row.prev_hash, *fields, row.event_sha256, row.state_sha256)


_TABLE = AuditRecord.__table__  # type: ignore[attr-defined]


def _lock_chain(session: Session) -> None:
    """Serialise appends across the node's processes before the head is read. On SQLite a
    plain SELECT runs outside the write transaction, so a concurrent append could slip in
    between reading the head and inserting (a forked chain): an UPDATE that matches nothing
    still takes the write lock, and holds it to the commit."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK})"))
    else:
        connection.execute(text("UPDATE audit_log SET id = id WHERE 0"))


def record(session: Session, entries: Sequence[Entry]) -> None:
    """Append ``entries`` to the chain in the caller's transaction."""
    if not entries:
        return
    _lock_chain(session)
    connection = session.connection()
    head = connection.execute(sa_select(_TABLE.c.hash).order_by(_TABLE.c.id.desc()).limit(1)).scalar()
    prev = head or GENESIS
    rows = []
    for entry in entries:
        at = entry.at.astimezone(dt.UTC).isoformat()
        detail = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        fields = {"at": at, "node": entry.node, "actor": entry.actor[:80], "action": entry.action}
        fields |= {"subject": entry.subject, "detail": detail}
        hashed = digest_v2(
            prev,
            at,
            entry.node,
            fields["actor"],
            entry.action,
            entry.subject,
            detail,
            entry.event_sha256,
            entry.state_sha256,
        )
        content = {"event_sha256": entry.event_sha256, "state_sha256": entry.state_sha256}
        rows.append({**fields, **content, "format": FORMAT, "prev_hash": prev, "hash": hashed})
        prev = hashed
    connection.execute(insert(_TABLE), rows)


@dataclasses.dataclass(frozen=True)
class Head:
    """The newest row of the chain: what a checkpoint signs."""

    row_id: int
    hash: str


def head(session: Session) -> Head | None:
    """The chain's newest row (None while it is empty)."""
    connection = session.connection()
    row = connection.execute(sa_select(_TABLE.c.id, _TABLE.c.hash).order_by(_TABLE.c.id.desc()).limit(1)).first()
    return None if row is None else Head(int(row[0]), str(row[1]))


@dataclasses.dataclass(frozen=True)
class Broken:
    """A link that does not hold, and why."""

    row_id: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A checkpoint of the chain, as the parent holds it: row ``row_id`` had hash ``hash``."""

    row_id: int
    hash: str
    at: str  # when the node signed it, as it wrote it


ContentCheck = Callable[[Session, Sequence[AuditRecord]], list[Broken]]
"""Compares the content hashes of chained rows with what is stored now (the case tables')."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How many rows hold, the first break of the links, and every other problem found."""

    count: int
    problems: list[Broken]

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(session: Session, batch: int = 5000) -> Iterator[list[AuditRecord]]:
    last = 0
    while True:
        page = session.exec(
            sa_select(AuditRecord).where(_TABLE.c.id > last).order_by(_TABLE.c.id).limit(batch)  # type: ignore[call-overload]
        ).all()
        if not page:
            return
        yield [row for (row,) in page]
        last = page[-1][0].id


def _chain(
    session: Session, content: ContentCheck | None, wanted: set[int]
) -> tuple[int, list[Broken], dict[int, str], int]:
    """Walk the links: rows that hold, the first broken link and content problems, the hashes
    of the ``wanted`` row ids, the newest row id."""
    prev, count, last, broken = GENESIS, 0, 0, False
    problems: list[Broken] = []
    hashes: dict[int, str] = {}
    for page in _rows(session):
        for row in page:
            row_id = int(row.id or 0)
            last = row_id
            if row_id in wanted:
                hashes[row_id] = row.hash
            if broken:
                continue
            if row.prev_hash != prev:
                problems.append(Broken(row_id, "与上一条记录的哈希不衔接（有记录被删除、插入或改动）"))
                broken = True
            elif row.hash != row_hash(row):
                problems.append(Broken(row_id, "记录内容与其哈希不符（该条记录被改动）"))
                broken = True
            else:
                prev, count = row.hash, count + 1
        if content is not None:
            problems.extend(content(session, page))
    return count, problems, hashes, last


def _against(anchors: Sequence[Anchor], hashes: dict[int, str], last: int) -> list[Broken]:
    """What the checkpoints held by the parent say of the chain as it is now."""
    problems: list[Broken] = []
    good = 0  # the newest row a checkpoint vouches for
    for anchor in sorted(anchors, key=lambda a: a.row_id):
        named = f"上级所存检查点（第 {anchor.row_id} 条，{anchor.at}）"
        held = hashes.get(anchor.row_id)
        if held == anchor.hash:
            good = anchor.row_id
            continue
        if held is None and anchor.row_id > last:
            where = f"第 {last + 1}–{anchor.row_id} 条" if last else f"第 1–{anchor.row_id} 条"
            problems.append(Broken(anchor.row_id, f"{named}之前的记录被截断：本地链只到第 {last} 条，{where}已不存在"))
        elif held is None:
            problems.append(Broken(anchor.row_id, f"{named}所记的记录已被删除"))
        else:
            problems.append(
                Broken(
                    anchor.row_id,
                    f"与{named}不符：第 {good + 1}–{anchor.row_id} 条记录之间有记录被改写或删除后重新计算了哈希",
                )
            )
        break  # the first checkpoint that does not hold names the damage; later ones follow from it
    return problems


def examine(session: Session, *, anchors: Sequence[Anchor] = (), content: ContentCheck | None = None) -> Verdict:
    """Walk the chain from the start, compare each row's content hashes with what is stored
    (``content``) and the chain with the checkpoints held by the parent (``anchors``)."""
    count, problems, hashes, last = _chain(session, content, {a.row_id for a in anchors})
    problems += _against(anchors, hashes, last)
    return Verdict(count, problems)


def verify(session: Session) -> tuple[int, Broken | None]:
    """Walk the links from the start: how many rows hold, and the first broken link if any."""
    verdict = examine(session)
    return verdict.count, (verdict.problems[0] if verdict.problems else None)
