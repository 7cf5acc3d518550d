"""Transactional outbox: events are written with their effect and published afterwards.

``enqueue_many`` adds rows in the caller's transaction. ``OutboxRelay`` publishes pending rows to
JetStream with ``Nats-Msg-Id`` set to the message id, and deletes a row only after JetStream
acknowledged it. A crash between the two re-publishes the row, and the stream's duplicate
window (and the consumers' inbox) drops the copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import NamedTuple

from nats.js import JetStreamContext
from sqlalchemy import delete, func, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from fengqiao.bus import MSG_ID
from fengqiao.db import Database
from fengqiao.models import OutboxRecord
from fengqiao.telemetry import publish_span

log = logging.getLogger(__name__)


class Message(NamedTuple):
    """A message to publish: subject, Nats-Msg-Id, body and headers (e.g. the trace context)."""

    subject: str
    message_id: str
    data: bytes
    headers: Mapping[str, str]


def enqueue_many(session: Session, *, messages: Sequence[Message], now: dt.datetime) -> None:
    """Add messages to the outbox within the caller's transaction, in one statement."""
    if not messages:
        return
    rows = [
        {
            "message_id": m.message_id,
            "subject": m.subject,
            "data": m.data,
            "headers": json.dumps(dict(m.headers)),
            "created_at": now,
        }
        for m in messages
    ]
    session.connection().execute(insert(OutboxRecord.__table__), rows)  # type: ignore[attr-defined]


class Pending(NamedTuple):
    """An outbox row waiting to be published."""

    id: int
    subject: str
    message_id: str
    data: bytes
    headers: str  # JSON


def pending(session: Session, *, limit: int, skip: Collection[int] = ()) -> list[Pending]:
    """The oldest unmarked rows, leaving out ``skip`` (sent, not yet marked).

    Not "ids above the last one sent": with concurrent writers (PostgreSQL) a lower id can
    commit after a higher one.
    """
    table = OutboxRecord.__table__  # type: ignore[attr-defined]
    query = sa_select(table.c.id, table.c.subject, table.c.message_id, table.c.data, table.c.headers)
    if skip:
        query = query.where(table.c.id.not_in(list(skip)))
    query = query.order_by(table.c.id).limit(limit)
    return [Pending(*row) for row in session.connection().execute(query)]


def pending_count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(OutboxRecord)).one())


def mark_published(session: Session, *, ids: Collection[int]) -> None:
    """Forget rows JetStream has acknowledged."""
    table = OutboxRecord.__table__  # type: ignore[attr-defined]
    session.connection().execute(delete(table).where(table.c.id.in_(list(ids))))


class OutboxRelay:
    """Publishes the outbox to JetStream, oldest first, in batches.

    Rows are published in id order and marked (deleted) only after their acks; marking is
    batched (at most every ``mark_interval_s``) because a lost mark costs only a re-publish,
    which the stream's duplicate window and the consumers' inbox absorb.
    """

    def __init__(
        self,
        *,
        db: Database,
        js: JetStreamContext,
        batch: int = 256,
        poll_interval_s: float = 1.0,
        publish_timeout_s: float = 5.0,
        mark_interval_s: float = 0.5,
        after_publish: Callable[[list[int]], Awaitable[None]] | None = None,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._js = js
        self._batch = batch
        self._poll = poll_interval_s
        self._timeout = publish_timeout_s
        self._mark_interval = mark_interval_s
        self._after_publish = after_publish  # a test hook: runs between ack and mark
        self._on_published = on_published  # counts acknowledged messages (the node's metrics)
        self._wake = asyncio.Event()
        self._unmarked: set[int] = set()  # acknowledged, not yet deleted
        self._marked_at = 0.0
        self.published = 0

    def wake(self) -> None:
        """Tell the relay new rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; a broker outage only delays publishing."""
        while True:
            self._wake.clear()  # before reading: a wake during the read is not lost
            try:
                sent = await self.relay_once(mark=False)
                loop_time = asyncio.get_running_loop().time()
                if sent == 0 or loop_time - self._marked_at >= self._mark_interval:
                    await self.mark()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: %s; retrying", exc)
                self._unmarked.clear()  # re-send them: duplicates are absorbed downstream
                sent = 0
                await asyncio.sleep(self._poll)
            if sent == 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                except TimeoutError:
                    pass

    async def relay_once(self, *, mark: bool = True) -> int:
        """Publish one batch (and mark it, unless told not to); returns how many rows were sent."""
        skip = frozenset(self._unmarked)
        rows = await self._db.read(lambda s: pending(s, limit=self._batch, skip=skip))
        if not rows:
            return 0
        await asyncio.gather(*(self._publish(row) for row in rows))
        ids = [row.id for row in rows]
        self._unmarked.update(ids)
        if self._after_publish is not None:
            await self._after_publish(ids)
        if mark:
            await self.mark()
        self.published += len(ids)
        if self._on_published is not None:
            self._on_published(len(ids))
        return len(ids)

    async def mark(self) -> None:
        """Delete every row acknowledged so far."""
        done = frozenset(self._unmarked)
        if done:
            await self._db.run(lambda s: mark_published(s, ids=done))
            self._unmarked -= done
        self._marked_at = asyncio.get_running_loop().time()

    async def _publish(self, row: Pending) -> None:
        with publish_span(row.subject, json.loads(row.headers)) as (_span, trace_headers):
            headers = {MSG_ID: row.message_id, **trace_headers}
            await self._js.publish(row.subject, row.data, timeout=self._timeout, headers=headers)
