"""Re-sealing a node's stored personal data under its current key (``fengqiao keys rotate``).

Sealed values live in the case projections (``case_record``), the ``received`` events of the
case log (``case_event``) and the outbox rows of those events not yet published. Each table is
walked in id order, a batch at a time; the batch's rows are read, re-sealed outside any
transaction and written back only where they are still as read (compare-and-set), together
with the table's progress (``reseal_progress``): an interrupted run goes on from the last
committed batch, and the node's own writers — in this process or others — are never
overwritten. A row a writer changed meanwhile may come back under an older key (a step copies
its case's sealed value), so the run ends with a census and walks again while one remains.
Dead letters are kept as they were received (evidence) and are not re-sealed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, select, true, update
from sqlmodel import Session

from fengqiao.cases.records import CaseEventRecord, CaseRecord, ResealProgress
from fengqiao.db import Database
from fengqiao.models import OutboxRecord
from fengqiao.security.sealing import Keyring, SealError, sealed_key_id
from fengqiao.v1 import case_pb2 as pb

_CASES: Table = CaseRecord.__table__  # type: ignore[attr-defined]
_EVENTS: Table = CaseEventRecord.__table__  # type: ignore[attr-defined]
_OUTBOX: Table = OutboxRecord.__table__  # type: ignore[attr-defined]
_PROGRESS: Table = ResealProgress.__table__  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class Stored:
    """A table holding sealed values: which rows, and where in their data the value sits."""

    name: str
    label: str  # for operators
    table: Table
    rows: ColumnElement[bool]
    holds_event: bool  # data is a CaseEvent (its received case); else a Case
    numeric_id: bool = False

    def after(self, cursor: str) -> ColumnElement[bool]:
        column = self.table.c.id
        if self.numeric_id:
            return column > int(cursor or 0)
        return column > cursor


STORED: tuple[Stored, ...] = (
    Stored("case_record", "案件", _CASES, true(), holds_event=False),
    Stored("case_event", "受理事件", _EVENTS, _EVENTS.c.type == "received", holds_event=True),
    Stored("outbox", "待发消息", _OUTBOX, _OUTBOX.c.subject.like("%.case.received"), holds_event=True, numeric_id=True),
)


def _case_of(stored: Stored, data: bytes) -> tuple[pb.Case, Any]:
    if stored.holds_event:
        event = pb.CaseEvent.FromString(data)
        return event.received.case, event
    case = pb.Case.FromString(data)
    return case, case


def stored_key_id(stored: Stored, data: bytes) -> str | None:
    """The id of the key the row's personal data is sealed under (None: it holds none)."""
    case, _ = _case_of(stored, data)
    return sealed_key_id(case.sealed_personal) if case.sealed_personal else None


def resealed_data(stored: Stored, data: bytes, keyring: Keyring) -> bytes | None:
    """The row's data with its personal data sealed under the current key, None when it is
    already (or holds none); ``SealError`` when the node cannot open it."""
    case, whole = _case_of(stored, data)
    if not keyring.resealed(case):
        return None
    return bytes(whole.SerializeToString())


@dataclasses.dataclass(frozen=True)
class Progress:
    """One table's progress under one key."""

    key_id: str
    table: str
    label: str
    scanned: int
    resealed: int
    unreadable: int
    finished: bool


def _progress(session: Session, key_id: str, stored: Stored, now: dt.datetime) -> Progress:
    row = session.get(ResealProgress, (key_id, stored.name))
    if row is None:
        row = ResealProgress(key_id=key_id, table_name=stored.name, updated_at=now)
        session.add(row)
        session.flush()
    return Progress(
        key_id, stored.name, stored.label, row.scanned, row.resealed, row.unreadable, row.finished_at is not None
    )


def _batch(db: Database, stored: Stored, key_id: str, keyring: Keyring, *, size: int, now: dt.datetime) -> Progress:
    """Re-seal the next batch of ``stored`` (reading first, then one short write transaction)."""

    def read(s: Session) -> tuple[str, list[Any]]:
        row = s.get(ResealProgress, (key_id, stored.name))
        cursor = row.after if row is not None else ""
        t = stored.table
        query = select(t.c.id, t.c.data).where(stored.rows, stored.after(cursor)).order_by(t.c.id).limit(size)
        return cursor, list(s.connection().execute(query))

    _, rows = db.transaction(read)
    changes: list[tuple[Any, bytes, bytes]] = []
    unreadable = 0
    for row_id, data in rows:
        try:
            new = resealed_data(stored, bytes(data), keyring)
        except SealError:
            unreadable += 1
            continue
        if new is not None:
            changes.append((row_id, bytes(data), new))

    def write(s: Session) -> Progress:
        t, done = stored.table, 0
        for row_id, old, new in changes:  # only rows still as read: a writer's newer row is kept
            done += s.connection().execute(update(t).where(t.c.id == row_id, t.c.data == old).values(data=new)).rowcount
        values: dict[str, Any] = {
            "scanned": _PROGRESS.c.scanned + len(rows),
            "resealed": _PROGRESS.c.resealed + done,
            "unreadable": _PROGRESS.c.unreadable + unreadable,
            "updated_at": now,
        }
        if rows:
            values["after"] = str(rows[-1][0])
        else:
            values["finished_at"] = now
        s.connection().execute(
            update(_PROGRESS).where(_PROGRESS.c.key_id == key_id, _PROGRESS.c.table_name == stored.name).values(values)
        )
        return _progress(s, key_id, stored, now)

    return db.transaction(write)


def census(db: Database, *, chunk: int = 1000) -> dict[str, collections.Counter[str]]:
    """How many stored values each key id holds, by table (every row read, a chunk at a time)."""
    found: dict[str, collections.Counter[str]] = {}
    for stored in STORED:
        counts: collections.Counter[str] = collections.Counter()
        cursor = ""
        while True:
            t = stored.table
            query = select(t.c.id, t.c.data).where(stored.rows, stored.after(cursor)).order_by(t.c.id).limit(chunk)
            rows = db.transaction(lambda s, q=query: list(s.connection().execute(q)))  # type: ignore[misc]
            counts.update(kid for _, data in rows if (kid := stored_key_id(stored, bytes(data))) is not None)
            if len(rows) < chunk:
                break
            cursor = str(rows[-1][0])
        found[stored.name] = counts
    return found


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a re-seal did and what is left."""

    key_id: str
    resealed: dict[str, int]  # by table
    unreadable: dict[str, int]  # stored values under keys the node does not hold, by table
    older: dict[str, int]  # still under an older key the node holds, by table (0 when done)

    def line(self) -> str:
        """The operator's summary (Chinese)."""
        done = "、".join(f"{s.label} {self.resealed.get(s.name, 0)} 条" for s in STORED)
        left = sum(self.older.values())
        unreadable = sum(self.unreadable.values())
        tail = "，旧密钥下已无存量数据"
        if left:
            tail = f"，仍有 {left} 条在旧密钥下（请再次运行 fengqiao keys reseal）"
        if unreadable:
            tail += f"；{unreadable} 条由本节点未持有的密钥加密，无法重新加密"
        return f"重新加密完成：当前密钥 {self.key_id}；已重新加密 {done}{tail}"


def reseal(
    db: Database,
    keyring: Keyring,
    *,
    now: Callable[[], dt.datetime],
    batch: int = 200,
    rounds: int = 3,
    settle_s: float = 2.0,
    on_batch: Callable[[Progress], None] = lambda _p: None,
) -> Summary:
    """Re-seal every stored value under the keyring's current key, resuming where a previous run
    under the same key stopped; ``on_batch`` hears each committed batch. The census that ends a
    round waits until ``settle_s`` after the start, by when the node's running processes have
    read the rotated keyring (they look again every second) and seal with the new key."""
    started = time.monotonic()
    key_id = keyring.current_id
    resealed: collections.Counter[str] = collections.Counter()
    for _ in range(rounds):
        for stored in STORED:
            progress = db.transaction(lambda s, stored=stored: _progress(s, key_id, stored, now()))  # type: ignore[misc]
            base = progress.resealed
            while not progress.finished:
                progress = _batch(db, stored, key_id, keyring, size=batch, now=now())
                on_batch(progress)
            resealed[stored.name] += progress.resealed - base
        time.sleep(max(0.0, started + settle_s - time.monotonic()))
        counts = census(db)
        held = keyring.keys(fresh=True).by_id
        older = {name: sum(n for kid, n in c.items() if kid != key_id and kid in held) for name, c in counts.items()}
        if not any(older.values()):
            break
        _restart(db, key_id, [name for name, n in older.items() if n], now())  # a writer raced a batch
    unreadable = {name: sum(n for kid, n in c.items() if kid not in held) for name, c in counts.items()}
    return Summary(key_id, dict(resealed), unreadable, older)


def _restart(db: Database, key_id: str, tables: Sequence[str], now: dt.datetime) -> None:
    db.transaction(
        lambda s: s.connection().execute(
            update(_PROGRESS)
            .where(_PROGRESS.c.key_id == key_id, _PROGRESS.c.table_name.in_(tables))
            .values(after="", finished_at=None, updated_at=now)
        )
    )
