"""The one decode step of every inbox handler (docs/ARCHITECTURE.md, *The event path*).

Every handler is built with ``receive`` (or ``receive_many``) from a ``Decoder``: the message is
parsed, its ids checked, its sender read from its subject and checked, and the domain errors of
applying it are mapped, here, once, to "dead letter" (``BadMessage``) or "not yet" (``NotYet``).

Who sent a message is checked here twice (the rules: ``fengqiao.writers``): the event's author must
be the node whose subject it came on (``Decoder``, for every message), and the author must be the
writer its type names in the aggregate as this node knows it (``authorized``, which each handler
calls with the aggregate it loaded). A message failing either is a dead letter ``伪造或越权：…``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao import writers
from fengqiao.cases import store as casestore
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
    Undecryptable,
)
from fengqiao.inbox import BatchHandler, Handler
from fengqiao.v1 import case_pb2

NEVER_APPLIES: tuple[type[FengqiaoError], ...] = (
    InvalidArgument,
    NotFound,
    AlreadyExists,
    IllegalTransition,
    PermissionDenied,
    Unauthenticated,
)
"""Domain errors meaning a message can never apply here: it becomes a dead letter with their reason."""

APPLIES_LATER: tuple[type[FengqiaoError], ...] = (NotYet, Unavailable, Undecryptable)
"""Domain errors meaning a message may apply later (a predecessor missing, the store away, a
personal-data key this node does not hold yet — a child may seal under a rotated key before its
parent's keyring has it): it is delivered again."""


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
    ``checks``; a rule of every message belongs in ``__call__``. Every message's sender must lie
    where the stream it was sourced from reaches (``writers.off_source``), and its author must be
    its sender (``writers.misattributed``) — except the messages a hub ``relays`` (the county's
    三联 hub): their subject names the hub, which checked the author when it took them."""

    message: type[M]
    what: str
    required: Sequence[str] = ()
    checks: Sequence[Check[M]] = ()
    relays: bool = False

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
        source = (msg.headers or {}).get(writers.SOURCE_HEADER)
        forged = writers.off_source(self.what, sender=route.sender, source=source)
        if forged is None and not self.relays:
            forged = writers.misattributed(self.what, claimed=envelope.author, sender=route.sender)
        if forged is not None:
            raise BadMessage(forged)
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


def authorized(envelope: Envelope[Message], kind: str, owners: writers.Owners | None) -> None:
    """Refuse (``BadMessage``, ``伪造或越权：…``) an event whose author may not write its type in an
    aggregate of ``kind`` whose writers, as known here, are ``owners`` (None: new here)."""
    reason = writers.overreach(envelope.what, kind, envelope.payload or "", author=envelope.author, owners=owners)
    if reason is not None:
        raise BadMessage(reason)


def authorized_steps(session: Session, envelopes: Sequence[Envelope[case_pb2.CaseEvent]]) -> None:
    """``authorized`` for replicated case events, before they are stored: each new one against
    its case as known here just before it (the batch folded in order; ``casestore.check_replicated``)."""

    def check(i: int, case: case_pb2.Case | None) -> None:
        authorized(envelopes[i], "case", None if case is None else writers.case_owners(case))

    casestore.check_replicated(session, events=[e.event for e in envelopes], check=check)


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
