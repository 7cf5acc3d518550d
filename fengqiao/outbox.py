"""Transactional outbox: events are written with their effect and published afterwards.

``enqueue`` adds a row in the caller's transaction. ``OutboxRelay`` publishes pending rows to
JetStream with ``Nats-Msg-Id`` set to the message id, and deletes a row only after JetStream
acknowledged it. A crash between the two re-publishes the row, and the stream's duplicate
window (and the consumers' inbox) drops the copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from nats.js import JetStreamContext
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from fengqiao.bus import MSG_ID
from fengqiao.db import Database
from fengqiao.models import OutboxRecord
from fengqiao.telemetry import publish_span

log = logging.getLogger(__name__)


def enqueue(
    session: Session,
    *,
    subject: str,
    message_id: str,
    data: bytes,
    headers: Mapping[str, str],
    now: dt.datetime,
) -> None:
    """Add a message to the outbox within the caller's transaction."""
    session.add(
        OutboxRecord(
            message_id=message_id,
            subject=subject,
            data=data,
            headers=json.dumps(dict(headers)),
            created_at=now,
        )
    )


def pending(session: Session, *, limit: int) -> list[OutboxRecord]:
    return list(session.exec(select(OutboxRecord).order_by(col(OutboxRecord.id)).limit(limit)).all())


def pending_count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(OutboxRecord)).one())


def mark_published(session: Session, *, ids: Sequence[int]) -> None:
    session.execute(delete(OutboxRecord).where(col(OutboxRecord.id).in_(ids)))


class OutboxRelay:
    """Publishes the outbox to JetStream, oldest first, in batches."""

    def __init__(
        self,
        *,
        db: Database,
        js: JetStreamContext,
        batch: int = 256,
        poll_interval_s: float = 1.0,
        publish_timeout_s: float = 5.0,
        after_publish: Callable[[list[int]], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._js = js
        self._batch = batch
        self._poll = poll_interval_s
        self._timeout = publish_timeout_s
        self._after_publish = after_publish  # a test hook: runs between ack and mark
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Tell the relay new rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; a broker outage only delays publishing."""
        while True:
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: %s; retrying", exc)
                sent = 0
                await asyncio.sleep(self._poll)
            if sent == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                except TimeoutError:
                    pass

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published and marked."""
        rows = await self._db.run(lambda s: pending(s, limit=self._batch))
        if not rows:
            return 0
        await asyncio.gather(*(self._publish(row) for row in rows))
        ids = [row.id for row in rows if row.id is not None]
        if self._after_publish is not None:
            await self._after_publish(ids)
        await self._db.run(lambda s: mark_published(s, ids=ids))
        self.published += len(ids)
        return len(ids)

    async def _publish(self, row: OutboxRecord) -> None:
        with publish_span(row.subject, json.loads(row.headers)) as (_span, trace_headers):
            headers = {MSG_ID: row.message_id, **trace_headers}
            await self._js.publish(row.subject, row.data, timeout=self._timeout, headers=headers)
