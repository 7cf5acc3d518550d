"""Receiving: the inbox consumer every service uses.

A consumer applies each message once (an inbox row in the same transaction); a message that can
never apply is a dead letter with its reason; one that arrived too early is delivered again.
Handlers are built with the one decode step, ``fengqiao.decode``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from sqlalchemy import func, insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fengqiao.bus import MSG_ID
from fengqiao.db import Database
from fengqiao.errors import (
    BadMessage,
    NotYet,
    Unavailable,
    Undecryptable,
)
from fengqiao.models import DeadLetter, InboxRecord
from fengqiao.telemetry import consume_span
from fengqiao.writers import FORGED

log = logging.getLogger(__name__)


Handler = Callable[[Session, Msg], None]


BatchHandler = Callable[[Session, Sequence[Msg]], None]
"""Applies a batch at once; raising makes the consumer fall back to ``Handler`` one by one."""


ACK_WAIT_S = 10.0
"""How long a fetched message waits for its acknowledgement before JetStream delivers it again.
A consumer's process killed mid-batch leaves its messages unacknowledged: this is how long an
escalation or a case update then waits (the soak measured 30 s tails at the old 30 s). A batch
still being applied when it runs out is delivered again and recognised by the inbox."""


RETRY_FIRST_S = 0.02
RETRY_MAX_S = 2.0


def retry_delay(delivered: int) -> float:
    """How long a message that may apply later waits before its next delivery: 20 ms at first (a
    concurrent writer is done by then), doubling to 2 s, so a message whose predecessor is long
    in coming costs a redelivery every 2 s, not a busy loop."""
    return min(RETRY_FIRST_S * 2 ** min(max(delivered - 1, 0), 16), RETRY_MAX_S)


class Rejected(NamedTuple):
    """A node's rejected messages at a glance: dead letters, the forged ones among them by event
    type (the last token of their subject), and the latest forged one's reason."""

    dead_letters: int
    forged: dict[str, int]
    latest_forged: str


def rejected(session: Session) -> Rejected:
    """The node's dead letters, and those refused as forged (``fengqiao.writers.FORGED``)."""
    connection = session.connection()
    table = DeadLetter.__table__  # type: ignore[attr-defined]
    total = int(connection.execute(sa_select(func.count()).select_from(table)).scalar_one())
    is_forged = table.c.reason.startswith(FORGED)
    forged: dict[str, int] = {}
    for subject, count in connection.execute(
        sa_select(table.c.subject, func.count()).where(is_forged).group_by(table.c.subject)
    ):
        kind = subject.rsplit(".", 1)[-1]
        forged[kind] = forged.get(kind, 0) + int(count)
    latest = connection.execute(
        sa_select(table.c.reason).where(is_forged).order_by(table.c.id.desc()).limit(1)
    ).scalar()
    return Rejected(total, forged, latest or "")


class InboxConsumer:
    """A durable pull consumer that applies each message once.

    ``handle(session, msg)`` runs in one database transaction together with the inbox row,
    so a redelivered message is recognised and only acknowledged. A message ``handle``
    rejects with ``BadMessage`` is kept in ``dead_letter`` with the reason and acknowledged.
    """

    def __init__(
        self,
        *,
        js: JetStreamContext,
        db: Database,
        stream: str,
        durable: str,
        filter_subjects: Sequence[str],
        handle: Handler,
        now: Callable[[], dt.datetime],
        batch: int = 256,
        ack_wait_s: float = ACK_WAIT_S,
        poll_s: float = 0.05,
        idle_wait_s: float = 5.0,
        on_applied: Callable[[], None] | None = None,
        handle_many: BatchHandler | None = None,
        applied: Callable[[int], None] | None = None,
    ) -> None:
        self._js = js
        self._db = db
        self._stream = stream
        self._durable = durable
        self._filters = list(filter_subjects)
        self._handle = handle
        self._now = now
        self._batch = batch
        self._ack_wait = ack_wait_s
        self._poll = poll_s
        self._idle_wait = idle_wait_s
        self._on_applied = on_applied
        self._handle_many = handle_many
        self._applied = applied  # counts applied messages (the node's metrics)

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        """Create (or confirm) the durable consumer and bind a pull subscription to it."""
        config = js_api.ConsumerConfig(
            durable_name=self._durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.ALL,
            filter_subjects=self._filters,
            ack_wait=self._ack_wait,
            max_ack_pending=10_000,
        )
        await self._js.add_consumer(self._stream, config)
        return await self._js.pull_subscribe_bind(self._durable, stream=self._stream)

    async def run(self) -> None:
        """Consume until cancelled, surviving broker restarts."""
        sub: JetStreamContext.PullSubscription | None = None
        idle = False
        while True:
            try:
                if sub is None:
                    sub = await self.subscribe()
                try:
                    # Busy: short polls — a fetch returns what is waiting at once but holds a
                    # partial batch until its timeout, so the timeout bounds the added latency.
                    # Idle: one lingering fetch of a single message, answered the moment one
                    # arrives, instead of twenty empty polls a second (most of an idle node's CPU).
                    if idle:
                        msgs = await sub.fetch(1, timeout=self._idle_wait)
                    else:
                        msgs = await sub.fetch(self._batch, timeout=self._poll)
                except TimeoutError:  # nats-py raises its own subclass, or asyncio's
                    idle = True
                    continue
                idle = False
                await self._process(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down, stream not there yet: retry
                log.warning("consumer %s on %s: %s; retrying", self._durable, self._stream, exc)
                sub = None
                await asyncio.sleep(1.0)

    async def _process(self, msgs: list[Msg]) -> None:
        """Apply a fetched batch in one transaction; if any message fails, go one by one so
        that message alone is dead-lettered or redelivered."""
        if len(msgs) > 1:
            consumer = f"{self._stream}/{self._durable}"
            with contextlib.ExitStack() as spans:
                for msg in msgs:
                    spans.enter_context(consume_span(msg.subject, msg.headers, consumer=consumer))
                try:
                    await self._db.run(lambda s: self._apply_all(s, msgs))
                except Exception as exc:
                    log.debug("batch of %d on %s: %r; one by one", len(msgs), self._durable, exc)
                else:
                    for msg in msgs:
                        await msg.ack()
                    self._count(len(msgs))
                    msgs = []
        for msg in msgs:
            await self._process_one(msg)
        if self._on_applied is not None:
            self._on_applied()

    def _apply_all(self, session: Session, msgs: list[Msg]) -> None:
        if self._handle_many is None:
            for msg in msgs:
                self.apply(session, msg)
            return
        inbox = InboxRecord.__table__  # type: ignore[attr-defined]
        connection = session.connection()
        by_id = {self.message_id(msg): msg for msg in msgs}
        seen = set(
            connection.execute(
                sa_select(inbox.c.message_id).where(
                    inbox.c.consumer == self._durable, inbox.c.message_id.in_(list(by_id))
                )
            ).scalars()
        )
        fresh = {mid: msg for mid, msg in by_id.items() if mid not in seen}
        if not fresh:
            return
        self._handle_many(session, list(fresh.values()))
        now = self._now()
        rows = [{"consumer": self._durable, "message_id": mid, "processed_at": now} for mid in fresh]
        connection.execute(insert(inbox), rows)

    async def _process_one(self, msg: Msg) -> None:
        message_id = self.message_id(msg)
        with consume_span(msg.subject, msg.headers, consumer=f"{self._stream}/{self._durable}"):
            try:
                await self._db.run(lambda s: self.apply(s, msg))
            except BadMessage as exc:
                log.warning("dead letter %s on %s: %s", message_id, msg.subject, exc.message)
                reason = exc.message
                await self._db.run(lambda s: self._dead_letter(s, msg, reason))
            except (Unavailable, IntegrityError, NotYet, Undecryptable):  # store down, a writer, too early, a key
                await msg.nak(delay=retry_delay(msg.metadata.num_delivered or 1))
                return
            except Exception as exc:  # a bug must not wedge the stream: keep it, with the reason
                log.exception("consumer %s failed on %s", self._durable, message_id)
                reason = f"处理失败：{exc!r}"
                await self._db.run(lambda s: self._dead_letter(s, msg, reason))
            else:
                self._count(1)
        await msg.ack()

    def _count(self, applied: int) -> None:
        if self._applied is not None:
            self._applied(applied)

    def message_id(self, msg: Msg) -> str:
        """The id a message is deduplicated by: its Nats-Msg-Id, else its stream position."""
        return (msg.headers or {}).get(MSG_ID) or f"{self._stream}:{msg.metadata.sequence.stream}"

    def apply(self, session: Session, msg: Msg) -> None:
        """Apply ``msg`` in the caller's transaction unless this consumer already did."""
        message_id = self.message_id(msg)
        inbox = InboxRecord.__table__  # type: ignore[attr-defined]
        connection = session.connection()
        seen = connection.execute(
            sa_select(inbox.c.message_id).where(inbox.c.consumer == self._durable, inbox.c.message_id == message_id)
        ).first()
        if seen is not None:
            return
        self._handle(session, msg)
        connection.execute(
            insert(inbox).values(consumer=self._durable, message_id=message_id, processed_at=self._now())
        )

    def _dead_letter(self, session: Session, msg: Msg, reason: str) -> None:
        seq = msg.metadata.sequence.stream if msg.reply else None
        session.add(
            DeadLetter(
                consumer=self._durable,
                subject=msg.subject,
                stream_seq=seq,
                reason=reason,
                received_at=self._now(),
                data=msg.data,
            )
        )
