"""Routing's bus handlers for 三联 joint cases and 联防 risk alerts, through the county hub.

At the county, the hub keeps what a town publishes — its author is its sender (the decode step),
a participant of the joint case or an addressee of the alert (``fengqiao.writers``) — and relays
the very same bytes down to every other participant. At a town, the inbound handlers keep what the
county relayed to it. A malformed or forged message is a dead letter.
"""

from __future__ import annotations

from google.protobuf.message import Message
from sqlmodel import Session

from fengqiao import outbox, writers
from fengqiao.clock import Clock
from fengqiao.decode import Check, Decoder, Envelope, authorized, receive
from fengqiao.divisions import address_tokens
from fengqiao.inbox import BadMessage, Handler
from fengqiao.telemetry import current_headers
from fengqiao.topology import Topology
from fengqiao.v1 import routing_pb2 as pb
from services.routing.joint import rules, store
from services.routing.joint.relay import relay

JOINT_HUB = "fq-joint-hub"
JOINT_IN = "fq-joint-in"
ALERT_HUB = "fq-alert-hub"
ALERT_IN = "fq-alert-in"
JOINT_REQUIRED = ("id", "joint_case_id")
ALERT_REQUIRED = ("id", "alert_id", "node")


def relayed_to(code: str, kind: str) -> str:
    """The down subjects of ``kind`` ("joint" or "alert") the county relays to town ``code``."""
    return f"fq.*.*.*.down.{address_tokens(code)}.{kind}.>"


def _relayed_by(county: str, reason: str, *, not_written_by: str = "") -> Check[Message]:
    """Sent down by the county hub (and, if given, not an event of ``not_written_by``)."""

    def check(envelope: Envelope[Message]) -> str | None:
        relayed = envelope.sender == county and envelope.route.to is not None
        return None if relayed and (not not_written_by or envelope.author != not_written_by) else reason

    return check


def joint_hub_handler(topology: Topology, clock: Clock) -> Handler:
    """The county's handler: keep a town's joint-case event and relay it to the others."""
    county = topology.county.code
    decode = Decoder(pb.JointEvent, "联合案件事件", required=JOINT_REQUIRED)

    def apply(session: Session, envelope: Envelope[pb.JointEvent]) -> None:
        event, kind = envelope.event, envelope.payload or ""
        if store.has_event(session, event_id=event.id):
            return  # a copy of one already kept
        current = store.get_joint(session, joint_id=event.joint_case_id, for_update=True)
        if kind == "opened":
            if current is not None:
                raise BadMessage(f"联合案件 {event.joint_case_id} 已存在")
            neighbours = topology.node(event.node).neighbours
            rules.check_invitations(event.node, list(event.opened.invited), neighbours)
            rules.apply_joint(None, event, county=county)
        elif current is None:
            raise BadMessage(f"联合案件 {event.joint_case_id} 不存在")
        else:
            authorized(envelope, "joint", writers.joint_owners(current))
        case = store.add_event(session, event=event, data=envelope.data, county=county, now=clock.now())
        to = rules.recipients(case, sender=event.node)
        messages = relay(county, to, "joint", kind, event.id, envelope.data, current_headers())
        outbox.enqueue_many(session, messages=messages, now=clock.now())

    return receive(decode, apply)


def joint_inbound_handler(node_code: str, county: str, clock: Clock) -> Handler:
    """A town's handler: keep a joint-case event the county relayed here."""
    relayed = _relayed_by(county, "联合案件事件不是县级中心转发的其他中心事件", not_written_by=node_code)
    decode = Decoder(pb.JointEvent, "联合案件事件", required=JOINT_REQUIRED, checks=[relayed], relays=True)

    def apply(session: Session, envelope: Envelope[pb.JointEvent]) -> None:
        event = envelope.event
        if store.has_event(session, event_id=event.id):
            return  # a copy of one already kept
        if envelope.payload == "opened":
            if node_code not in event.opened.invited:
                raise BadMessage(f"联合案件 {event.joint_case_id} 没有邀请本中心")
        elif store.get_joint(session, joint_id=event.joint_case_id) is None:
            raise BadMessage(f"本中心没有联合案件 {event.joint_case_id}")
        store.add_event(session, event=event, data=envelope.data, county=county, now=clock.now())

    return receive(decode, apply)


def alert_hub_handler(topology: Topology, clock: Clock) -> Handler:
    """The county's handler: keep a town's alert (or acknowledgement) and relay it on."""
    county = topology.county.code
    decode = Decoder(pb.RiskAlertEvent, "联防预警事件", required=ALERT_REQUIRED)

    def apply(session: Session, envelope: Envelope[pb.RiskAlertEvent]) -> None:
        event, kind = envelope.event, envelope.payload or ""
        if kind == "raised":
            strangers = set(event.raised.to_nodes) - set(topology.node(event.node).neighbours)
            if strangers:
                raise BadMessage(f"{'、'.join(sorted(strangers))} 不是 {event.node} 的相邻乡镇")
        current = store.get_alert(session, alert_id=event.alert_id)
        authorized(envelope, "alert", None if current is None else writers.alert_owners(current))
        alert = rules.apply_alert(current, event)
        store.put_alert(session, alert=alert)
        to = list(alert.to_nodes) if kind == "raised" else [alert.from_node]
        messages = relay(county, to, "alert", kind, event.id, envelope.data, current_headers())
        outbox.enqueue_many(session, messages=messages, now=clock.now())

    return receive(decode, apply)


def alert_inbound_handler(node_code: str, county: str) -> Handler:
    """A town's handler: an alert to it, or a neighbour's acknowledgement of its own."""
    decode = Decoder(
        pb.RiskAlertEvent,
        "联防预警事件",
        required=ALERT_REQUIRED,
        checks=[_relayed_by(county, "联防预警不是县级中心转发的")],
        relays=True,
    )

    def apply(session: Session, envelope: Envelope[pb.RiskAlertEvent]) -> None:
        event, kind = envelope.event, envelope.payload
        current = store.get_alert(session, alert_id=event.alert_id)
        if kind == "raised" and node_code not in event.raised.to_nodes:
            raise BadMessage(f"预警 {event.alert_id} 不是发给本中心的")
        if kind == "acknowledged" and (current is None or current.from_node != node_code):
            raise BadMessage(f"预警 {event.alert_id} 不是本中心发出的")
        store.put_alert(session, alert=rules.apply_alert(current, event))

    return receive(decode, apply)
