"""Federation's bus handlers: the subtree sync, storing in this node's case log, once each, the
case events of the nodes below (so figures cover the whole subtree) and what the tiers above did
to the cases that came from here (so a village sees how its escalated case ended)."""

from __future__ import annotations

from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.clock import Clock
from fengqiao.decode import Decoder, Envelope, authorized_steps, receive, receive_many, written_above, written_within
from fengqiao.inbox import BatchHandler, Handler
from fengqiao.v1 import case_pb2

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
