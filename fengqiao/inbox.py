"""Receiving: the inbox consumer every service uses, the one decode step of every handler, and
the errors a handler raises.

A consumer applies each message once (an inbox row in the same transaction); a message that can
never apply is a dead letter with its reason; one that arrived too early is delivered again.
Every handler is built with ``receive`` (or ``receive_many``) from a ``Decoder``: the message is
parsed, its ids checked, its sender read from its subject and checked, and the domain errors of
applying it are mapped, here, once, to "dead letter" or "not yet".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fengqiao.bus import MSG_ID
from fengqiao.db import Database
from fengqiao.divisions import Route, is_within, route_of
from fengqiao.errors import (
    AlreadyExists,
    BadMessage,
    FengqiaoError,
    IllegalTransition,
    InvalidArgument,
    NotFound,
    NotYet,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from fengqiao.models import DeadLetter, InboxRecord
from fengqiao.telemetry import consume_span

log = logging.getLogger(__name__)


Handler = Callable[[Session, Msg], None]


BatchHandler = Callable[[Session, Sequence[Msg]], None]
"""Applies a batch at once; raising makes the consumer fall back to ``Handler`` one by one."""


NEVER_APPLIES: tuple[type[FengqiaoError], ...] = (
    InvalidArgument,
    NotFound,
    AlreadyExists,
    IllegalTransition,
    PermissionDenied,
    Unauthenticated,
)
"""Domain errors meaning a message can never apply here: it becomes a dead letter with their reason."""

APPLIES_LATER: tuple[type[FengqiaoError], ...] = (NotYet, Unavailable)
"""Domain errors meaning a message may apply later (a predecessor missing, the store away): it is
delivered again."""


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Map what applying a message raised: ``NEVER_APPLIES`` becomes ``BadMessage``, the rest as is."""
    try:
        yield
    except NEVER_APPLIES as exc:
        raise BadMessage(exc.message) from exc


M = TypeVar("M", bound=Message)
M_co = TypeVar("M_co", bound=Message, covariant=True)

FIELD_LABELS = {
    "id": "编号",
    "case_id": "案件编号",
    "project_id": "项目编号",
    "directive_id": "指令编号",
    "joint_case_id": "案件编号",
    "alert_id": "预警编号",
    "seq": "序号",
    "node": "发出中心",
    "payload": "内容",
}
"""How a dead letter's reason names a missing field."""


@dataclasses.dataclass(frozen=True)
class Envelope(Generic[M_co]):
    """A decoded message: the event it carries, who sent it, on which subject."""

    event: M_co
    what: str  # what it carries, as the operator reads it: 案件事件, 指令事件 …
    subject: str
    route: Route  # the subject read back: sender, addressee, kind, type
    data: bytes  # the bytes as the author serialized them

    @property
    def sender(self) -> str:
        """The node that published the message: its subject says so, and a node may publish only
        on its own subjects (its leaf permissions); sourcing across tiers keeps the subject."""
        return self.route.sender

    @property
    def author(self) -> str:
        """The node the event names as its writer (its ``node`` field)."""
        return str(getattr(self.event, "node", ""))

    @property
    def payload(self) -> str | None:
        """Which payload the event carries (its ``payload`` oneof), None if none."""
        return self.event.WhichOneof("payload")


Check = Callable[[Envelope[M]], str | None]
"""A check of a decoded message before it is applied: the reason it may not be, or None."""


@dataclasses.dataclass(frozen=True)
class Decoder(Generic[M]):
    """The decode step of a handler: parse ``message`` (``what`` names it in dead letters), require
    ``required`` fields (ints above 0, strings non-empty, oneofs set), read the sender from the
    subject and run ``checks``; any failure is a ``BadMessage`` with the reason.

    Who may send what is checked here and nowhere else: a rule of one consumer is one of its
    ``checks``; a rule of every message belongs in ``__call__``."""

    message: type[M]
    what: str
    required: Sequence[str] = ()
    checks: Sequence[Check[M]] = ()

    def __call__(self, msg: Msg) -> Envelope[M]:
        try:
            event = self.message.FromString(msg.data)
        except DecodeError as exc:
            raise BadMessage(f"无法解析的{self.what}：{exc}") from exc
        try:
            route = route_of(msg.subject)
        except InvalidArgument as exc:
            raise BadMessage(f"{self.what}的主题无法识别发送中心：{exc.message}") from exc
        missing = [FIELD_LABELS.get(name, name) for name in self.required if not _present(event, name)]
        if missing:
            raise BadMessage(f"{self.what}缺少{'、'.join(missing)}")
        envelope = Envelope(event, self.what, msg.subject, route, msg.data)
        for check in self.checks:
            reason = check(envelope)
            if reason is not None:
                raise BadMessage(reason)
        return envelope


def _present(event: Message, name: str) -> bool:
    if name in event.DESCRIPTOR.oneofs_by_name:
        return event.WhichOneof(name) is not None
    value = getattr(event, name)
    return value > 0 if isinstance(value, int) else bool(value)


def written_within(code: str, *, itself: bool = True) -> Check[Message]:
    """The event's writer is ``code`` or a node below it (strictly below, unless ``itself``)."""

    def check(envelope: Envelope[Message]) -> str | None:
        node = envelope.author
        if is_within(node, code) and (itself or node != code):
            return None
        return f"{envelope.what}来自辖区外的节点 {node}"

    return check


def written_above(code: str, *, itself: bool = False) -> Check[Message]:
    """The event's writer is a node above ``code`` (or ``code`` itself, if ``itself``)."""

    def check(envelope: Envelope[Message]) -> str | None:
        node = envelope.author
        if node and is_within(code, node) and (itself or node != code):
            return None
        return f"{envelope.what}来自非上级节点 {node}"

    return check


def receive(decode: Decoder[M], apply: Callable[[Session, Envelope[M]], None]) -> Handler:
    """The inbox handler that decodes each message with ``decode`` and applies it, mapping the
    domain errors ``apply`` raises (``domain_errors``)."""

    def handle(session: Session, msg: Msg) -> None:
        envelope = decode(msg)
        with domain_errors():
            apply(session, envelope)

    return handle


def receive_many(decode: Decoder[M], apply: Callable[[Session, list[Envelope[M]]], None]) -> BatchHandler:
    """``receive`` for a fetched batch at once: any message that fails to decode or apply sends
    the batch back to the one-by-one handler, which dead-letters or redelivers that one."""

    def handle_many(session: Session, msgs: Sequence[Msg]) -> None:
        envelopes = [decode(msg) for msg in msgs]
        with domain_errors():
            apply(session, envelopes)

    return handle_many


ACK_WAIT_S = 10.0
"""How long a fetched message waits for its acknowledgement before JetStream delivers it again.
A consumer's process killed mid-batch leaves its messages unacknowledged: this is how long an
escalation or a case update then waits (the soak measured 30 s tails at the old 30 s). A batch
still being applied when it runs out is delivered again and recognised by the inbox."""


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
            except (Unavailable, IntegrityError, NotYet):  # store down, a concurrent writer, too early
                await msg.nak(delay=0.02)
                return
            except Exception as exc:  # a bug must not wedge the stream: keep it, with the reason
                log.exception("consumer %s failed on %s", self._durable, message_id)
                reason = f"处理失败：{exc!r}"
                await self._db.run(lambda s: self._dead_letter(s, msg, reason))
        await msg.ack()

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
