"""Federation's bus handlers: the subtree sync, storing in this node's case log, once each, the
case events of the nodes below (so figures cover the whole subtree) and what the tiers above did
to the cases that came from here (so a village sees how its escalated case ended); and the
operator accounts the nodes above manage for this one (``fengqiao.security.accounts``)."""

from __future__ import annotations

from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.clock import Clock
from fengqiao.decode import (
    Check,
    Decoder,
    Envelope,
    authorized_steps,
    receive,
    receive_many,
    written_above,
    written_within,
)
from fengqiao.divisions import address_tokens, is_within
from fengqiao.inbox import BatchHandler, Handler
from fengqiao.security import accounts
from fengqiao.security.roles import role_of
from fengqiao.v1 import account_pb2, case_pb2

SYNC_CONSUMER = "fq-subtree-sync"
DOWN_CONSUMER = "fq-downward-sync"


def _decoder(node_code: str, *, from_above: bool) -> Decoder[case_pb2.CaseEvent]:
    """Case events written below this node — or, from above, by this node's ancestors."""
    check = written_above(node_code) if from_above else written_within(node_code, itself=False)
    return Decoder(case_pb2.CaseEvent, "案件事件", required=("id", "case_id", "seq"), checks=[check])


def subtree_event_handler(node_code: str, clock: Clock, *, from_above: bool = False) -> Handler:
    """Store a replicated case event — from below, or from the tiers above for the cases that
    came from here; malformed or foreign ones become dead letters."""

    def apply(session: Session, envelope: Envelope[case_pb2.CaseEvent]) -> None:
        authorized_steps(session, [envelope])
        casestore.store_replicated(session, event=envelope.event, now=clock.now())

    return receive(_decoder(node_code, from_above=from_above), apply)


def subtree_batch_handler(node_code: str, clock: Clock, *, from_above: bool = False) -> BatchHandler:
    """``subtree_event_handler`` for a whole fetched batch in one go (the county's hot path);
    any bad message sends the batch back to the one-by-one handler, which dead-letters it."""

    def apply(session: Session, envelopes: list[Envelope[case_pb2.CaseEvent]]) -> None:
        authorized_steps(session, envelopes)
        casestore.store_replicated_many(session, events=[e.event for e in envelopes], now=clock.now())

    return receive_many(_decoder(node_code, from_above=from_above), apply)


ACCOUNT_CONSUMER = "fq-accounts-in"


def accounts_for(code: str) -> str:
    """The down subjects of accounts addressed to ``code`` itself — from any publisher, so that
    one which is not an ancestor is dead-lettered rather than passed over."""
    return f"fq.*.*.*.down.{address_tokens(code)}.{accounts.KIND}.>"


def _account(event: account_pb2.AccountEvent) -> account_pb2.OperatorAccount:
    account: account_pb2.OperatorAccount = getattr(event, event.WhichOneof("payload") or "created")
    return account


def _from_above(here: str) -> Check[account_pb2.AccountEvent]:
    """Only a node above this one sends accounts to it: never a child, a sibling or itself."""

    def check(envelope: Envelope[account_pb2.AccountEvent]) -> str | None:
        sender = envelope.sender
        if is_within(here, sender) and sender != here:
            return None
        return f"伪造或越权：{sender} 不是本中心 {here} 的上级，不能向本中心下发账号"

    return check


def _addressed_here(here: str) -> Check[account_pb2.AccountEvent]:
    """The account is one of this node's, and the subject names the change the event carries."""

    def check(envelope: Envelope[account_pb2.AccountEvent]) -> str | None:
        account = _account(envelope.event)
        if envelope.route.to != here or account.node_code != here:
            return f"账号 {account.username} 属于 {account.node_code}，不是本中心 {here} 的账号"
        if envelope.route.event_type != envelope.payload:
            return f"账号事件的主题（{envelope.route.event_type}）与其内容（{envelope.payload}）不符"
        if not account.username or account.version <= 0 or not account.password_hash:
            return "账号事件缺少用户名、版本号或密码哈希"
        if role_of(account.role) is None:
            return f"账号 {account.username} 的角色“{account.role}”未知"
        return None

    return check


def account_handler(here: str, clock: Clock) -> Handler:
    """Keep an operator account a node above sent down to this one (``accounts.received``)."""
    decode = Decoder(
        account_pb2.AccountEvent,
        "账号事件",
        required=("id", "node", "payload"),
        checks=[_from_above(here), _addressed_here(here)],
    )

    def apply(session: Session, envelope: Envelope[account_pb2.AccountEvent]) -> None:
        accounts.received(session, event=envelope.event, now=clock.now())

    return receive(decode, apply)
