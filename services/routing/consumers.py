"""Routing's bus handlers for case routing: escalations arriving from below, stored, then
accepted at once when the county's settings say a center takes every escalation addressed to it
(otherwise an operator decides).

The acceptance is written in the same transaction as the inbox row of the request, so a
redelivered or duplicated request can never produce a second holder. Directives and joint cases
have their own handlers (``directives.consumers``, ``joint.consumers``).
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.clock import Clock
from fengqiao.decode import Decoder, Envelope, authorized_steps, receive
from fengqiao.inbox import Handler, NotYet
from fengqiao.telemetry import current_headers
from fengqiao.v1 import case_pb2 as pb
from services.routing.config import RoutingSettings
from services.routing.rules import acceptance

log = logging.getLogger(__name__)
ESCALATION_CONSUMER = "fq-escalations"
ACTOR = "自动接收"


def _an_escalation(envelope: Envelope[pb.CaseEvent]) -> str | None:
    return None if envelope.payload == "escalation_requested" else "不是上报事件"


def escalation_handler(node_code: str, settings: RoutingSettings, clock: Clock) -> Handler:
    """Store an escalation request from a center directly below, and accept it when the
    settings say so."""
    decode = Decoder(pb.CaseEvent, "上报事件", required=("id", "case_id", "seq"), checks=[_an_escalation])

    def apply(session: Session, envelope: Envelope[pb.CaseEvent]) -> None:
        event, now = envelope.event, clock.now()
        authorized_steps(session, [envelope])  # written by the case's holder
        casestore.store_replicated(session, event=event, now=now)
        case = casestore.load_case(session, case_id=event.case_id)
        if case is None or case.version < event.seq:
            raise NotYet("上报事件之前的事件尚未同步到本节点")  # the subtree sync will bring them
        if case.escalation_to != node_code or not settings.auto_accept_escalations:
            return  # already decided, or left to an operator

        casestore.advance(
            session,
            case_id=case.id,
            node_code=node_code,
            actor=ACTOR,
            steps=lambda _case: [("escalation_accepted", acceptance(now, settings))],
            now=now,
            headers=current_headers(),
        )
        log.info("accepted escalation of %s from %s", case.receipt_no, event.node)

    return receive(decode, apply)
