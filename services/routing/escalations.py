"""Escalations arriving from below: stored, then accepted at once when the county's settings
say a center takes every escalation addressed to it (otherwise an operator decides).

The acceptance is written in the same transaction as the inbox row of the request, so a
redelivered or duplicated request can never produce a second holder.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.clock import Clock
from fengqiao.errors import IllegalTransition
from fengqiao.inbox import BadMessage, Handler, NotYet
from fengqiao.telemetry import current_headers
from fengqiao.v1 import case_pb2 as pb
from services.routing.config import RoutingSettings
from services.routing.handlers import acceptance

log = logging.getLogger(__name__)
CONSUMER = "fq-escalations"
ACTOR = "自动接收"


def escalation_handler(node_code: str, settings: RoutingSettings, clock: Clock) -> Handler:
    """The inbox handler for escalation requests from the centers directly below."""

    def handle(session: Session, msg: Msg) -> None:
        try:
            event = pb.CaseEvent.FromString(msg.data)
        except DecodeError as exc:
            raise BadMessage(f"无法解析的上报事件：{exc}") from exc
        if event.WhichOneof("payload") != "escalation_requested":
            raise BadMessage("不是上报事件")
        now = clock.now()
        try:
            casestore.store_replicated(session, event=event, now=now)
        except IllegalTransition as exc:
            raise BadMessage(exc.message) from exc
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

    return handle
