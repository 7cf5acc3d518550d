"""Routing's bus handlers for directives: the ones addressed here from the centers above, and the
answers (签收, 办结) of the centers below to the ones sent from here."""

from __future__ import annotations

from sqlmodel import Session

from fengqiao import writers
from fengqiao.clock import Clock
from fengqiao.decode import Check, Decoder, Envelope, authorized, receive, written_above
from fengqiao.divisions import address_tokens
from fengqiao.inbox import Handler
from fengqiao.v1 import routing_pb2
from services.routing.directives import rules, store

DOWN_CONSUMER = "fq-directives-in"
ANSWER_CONSUMER = "fq-directive-answers"
REQUIRED = ("id", "directive_id", "node", "payload")


def directives_for(code: str) -> str:
    """The down subjects of directives addressed to ``code`` itself, from any center above."""
    return f"fq.*.*.*.down.{address_tokens(code)}.directive.>"


def _issued_to(code: str) -> Check[routing_pb2.DirectiveEvent]:
    def check(envelope: Envelope[routing_pb2.DirectiveEvent]) -> str | None:
        if envelope.payload == "issued" and envelope.event.issued.to_node == code:
            return None
        return "下行指令不是发给本中心的下达事件"

    return check


def directive_handler(node_code: str, clock: Clock) -> Handler:
    """Keep a directive a center above addressed to this one."""
    decode = Decoder(
        routing_pb2.DirectiveEvent,
        "指令事件",
        required=REQUIRED,
        checks=[_issued_to(node_code), written_above(node_code)],
    )

    def apply(session: Session, envelope: Envelope[routing_pb2.DirectiveEvent]) -> None:
        current = store.get_directive(session, directive_id=envelope.event.directive_id)
        _keep(session, current, envelope.event, clock)

    return receive(decode, apply)


def directive_answer_handler(node_code: str, clock: Clock) -> Handler:
    """Keep a center's answer (签收, 办结) to a directive sent from here — the receiver's only; pass
    over the answers to other centers' directives."""
    decode = Decoder(routing_pb2.DirectiveEvent, "指令事件", required=REQUIRED)

    def apply(session: Session, envelope: Envelope[routing_pb2.DirectiveEvent]) -> None:
        current = store.get_directive(session, directive_id=envelope.event.directive_id)
        if current is None or current.from_node != node_code:
            return  # an answer to another center's directive, passing through this subtree
        authorized(envelope, "directive", writers.directive_owners(current))
        _keep(session, current, envelope.event, clock)

    return receive(decode, apply)


def _keep(
    session: Session, current: routing_pb2.Directive | None, event: routing_pb2.DirectiveEvent, clock: Clock
) -> None:
    store.put_directive(session, directive=rules.apply_directive(current, event), now=clock.now())
