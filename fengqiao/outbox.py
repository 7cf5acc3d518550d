"""Transactional outbox: events are written with their effect and published afterwards.

``enqueue_many`` adds rows in the caller's transaction. ``OutboxRelay`` publishes pending rows to
JetStream with ``Nats-Msg-Id`` set to the message id, and deletes a row only after JetStream
acknowledged it. A crash between the two re-publishes the row, and the stream's duplicate
window (and the consumers' inbox) drops the copy.

No row can block the others. Each row names its aggregate (the case, directive or joint case it
changes: header ``Fq-Aggregate``); the rows of one aggregate go out one at a time in id order,
those of different aggregates together. A row that fails by itself is retried ``max_attempts``
times and then quarantined (``fengqiao.quarantine``), and the later rows of its aggregate wait
behind it (the aggregate is *held*); every other row goes on. A full upward buffer, a broker
that is down or slow, is no fault of a row: the relay stops where it is and tries again later,
from the same row, so it neither reorders an aggregate nor quarantines anything.
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

from fengqiao import quarantine
from fengqiao.bus import MSG_ID
from fengqiao.db import Database
from fengqiao.models import OutboxRecord
from fengqiao.telemetry import publish_span

log = logging.getLogger(__name__)

AGGREGATE = "Fq-Aggregate"
"""The header naming the aggregate a message changes (its rows keep their order)."""


class Message(NamedTuple):
    """A message to publish: subject, Nats-Msg-Id, body, headers (e.g. the trace context) and the
    aggregate it changes (``eventlog.record`` sets it: the id of the case, directive …)."""

    subject: str
    message_id: str
    data: bytes
    headers: Mapping[str, str]
    aggregate: str = ""


def enqueue_many(session: Session, *, messages: Sequence[Message], now: dt.datetime) -> None:
    """Add messages to the outbox within the caller's transaction, in one statement."""
    if not messages:
        return
    rows = [
        {
            "message_id": m.message_id,
            "subject": m.subject,
            "data": m.data,
            "headers": json.dumps({**m.headers, AGGREGATE: m.aggregate} if m.aggregate else dict(m.headers)),
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

    def aggregate(self) -> str:
        """What the row's order is kept within: its aggregate, or the row alone when it names none."""
        return str(json.loads(self.headers).get(AGGREGATE) or f"outbox:{self.id}")


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
    """Rows not yet acknowledged (the quarantined ones included: they are not delivered)."""
    return int(session.exec(select(func.count()).select_from(OutboxRecord)).one())


def mark_published(session: Session, *, message_ids: Collection[str]) -> None:
    """Forget rows JetStream has acknowledged, by their message ids: not by row id, which SQLite
    gives again to a new row once the highest row is deleted — with two relays on one outbox (two
    processes of a node), a late mark by row id would delete a new row that was never sent."""
    table = OutboxRecord.__table__  # type: ignore[attr-defined]
    session.connection().execute(delete(table).where(table.c.message_id.in_(list(message_ids))))


class OutboxRelay:
    """Publishes the outbox to JetStream, oldest first, in batches.

    A batch goes out in waves: the first pending row of every aggregate, then the second …, so
    an aggregate's rows are acknowledged in order; an aggregate whose row failed sends nothing
    more in that batch. Rows are marked (deleted) only after their acks; marking is batched (at
    most every ``mark_interval_s``) because a lost mark costs only a re-publish, which the
    stream's duplicate window and the consumers' inbox absorb.
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
        max_attempts: int = 5,
        retry_after_s: float = 1.0,
        now: Callable[[], dt.datetime] | None = None,
        after_publish: Callable[[list[int]], Awaitable[None]] | None = None,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._js = js
        self._batch = batch
        self._poll = poll_interval_s
        self._timeout = publish_timeout_s
        self._mark_interval = mark_interval_s
        self._max_attempts = max_attempts
        self._retry_after = retry_after_s
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._after_publish = after_publish  # a test hook: runs between ack and mark
        self._on_published = on_published  # counts acknowledged messages (the node's metrics)
        self._wake = asyncio.Event()
        self._unmarked: dict[int, str] = {}  # acknowledged, not yet deleted: row id -> message id
        self._marked_at = 0.0
        self._attempts: dict[int, int] = {}  # failed rows: how often they failed by themselves
        self._retry_at: dict[int, float] = {}  # failed rows: not again before (loop time)
        self._quarantined: set[int] | None = None  # row ids; read from the database at first use
        self._held: dict[str, int] = {}  # aggregate -> its quarantined row
        self._waiting: set[int] = set()  # rows of held aggregates, behind their quarantined row
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
        if self._quarantined is None:
            kept = await self._db.read(quarantine.quarantined)
            self._quarantined = {q.outbox_id for q in kept}
            self._held = {q.aggregate: q.outbox_id for q in kept if q.aggregate}
        skip = frozenset(self._unmarked.keys() | self._quarantined | self._waiting)
        rows = await self._db.read(lambda s: pending(s, limit=self._batch, skip=skip))
        if not rows:
            return 0
        waves = self._waves(rows)
        sent: list[Pending] = []
        stopped: set[str] = set()  # aggregates that sent their last row of this batch
        for wave in waves:
            wave = [(key, row) for key, row in wave if key not in stopped]
            if not wave:
                continue
            results = await asyncio.gather(*(self._publish(row) for _, row in wave), return_exceptions=True)
            hold = False
            for (key, row), result in zip(wave, results, strict=True):
                if result is None:
                    sent.append(row)
                    self._attempts.pop(row.id, None)
                    self._retry_at.pop(row.id, None)
                    continue
                if not isinstance(result, Exception):
                    raise result  # CancelledError and the like
                stopped.add(key)
                if quarantine.holds_back(result):
                    if not hold:
                        log.info("outbox relay: held back at row %d: %s", row.id, result)
                    hold = True
                else:
                    await self._failed(row, key, result)
            if hold:  # the broker's state, not a row's: stop here and keep the order
                break
        self._unmarked.update((row.id, row.message_id) for row in sent)
        if self._after_publish is not None and sent:
            await self._after_publish([row.id for row in sent])
        if mark:
            await self.mark()
        self.published += len(sent)
        if self._on_published is not None and sent:
            self._on_published(len(sent))
        return len(sent)

    def _waves(self, rows: list[Pending]) -> list[list[tuple[str, Pending]]]:
        """The batch's rows as waves of at most one row per aggregate, each aggregate in id order;
        the rows of held aggregates and rows waiting to be retried stay out (with what follows them)."""
        now = asyncio.get_running_loop().time()
        by_key: dict[str, list[Pending]] = {}
        blocked: set[str] = set()
        for row in rows:
            key = row.aggregate()
            if key in self._held:
                self._waiting.add(row.id)
                continue
            if key in blocked:
                continue
            if self._retry_at.get(row.id, 0.0) > now:
                blocked.add(key)
                continue
            by_key.setdefault(key, []).append(row)
        depth = max((len(r) for r in by_key.values()), default=0)
        return [[(key, r[i]) for key, r in by_key.items() if i < len(r)] for i in range(depth)]

    async def _failed(self, row: Pending, key: str, exc: Exception) -> None:
        """Count a row's own failure; quarantine it after ``max_attempts``."""
        attempts = self._attempts.get(row.id, 0) + 1
        if attempts < self._max_attempts:
            self._attempts[row.id] = attempts
            self._retry_at[row.id] = asyncio.get_running_loop().time() + self._retry_after
            log.warning(
                "outbox relay: row %d (%s) failed (%d of %d): %r", row.id, key, attempts, self._max_attempts, exc
            )
            return
        reason = f"连续 {attempts} 次发送失败：{type(exc).__name__}: {exc}"
        moment = self._now()
        aggregate = "" if key.startswith("outbox:") else key
        await self._db.run(
            lambda s: quarantine.keep(
                s,
                outbox_id=row.id,
                message_id=row.message_id,
                subject=row.subject,
                aggregate=aggregate,
                attempts=attempts,
                reason=reason,
                now=moment,
            )
        )
        log.error(
            "outbox relay: row %d (%s, %s) quarantined after %d attempts: %s",
            row.id,
            row.subject,
            key,
            attempts,
            reason,
        )
        self._attempts.pop(row.id, None)
        self._retry_at.pop(row.id, None)
        assert self._quarantined is not None
        self._quarantined.add(row.id)
        if aggregate:
            self._held[aggregate] = row.id

    async def mark(self) -> None:
        """Delete every row acknowledged so far."""
        done = dict(self._unmarked)
        if done:
            await self._db.run(lambda s: mark_published(s, message_ids=done.values()))
            for row_id in done:
                self._unmarked.pop(row_id, None)
        self._marked_at = asyncio.get_running_loop().time()

    async def _publish(self, row: Pending) -> None:
        headers_in = json.loads(row.headers)
        with publish_span(row.subject, headers_in) as (_span, trace_headers):
            headers = {MSG_ID: row.message_id, **trace_headers}
            if AGGREGATE in headers_in:
                headers[AGGREGATE] = headers_in[AGGREGATE]
            await self._js.publish(row.subject, row.data, timeout=self._timeout, headers=headers)
