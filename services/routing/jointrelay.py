"""The county hub of 三联 joint cases and 联防 risk alerts.

A town records its own event with its effect and publishes it up (outbox → its events stream,
which the county's sources). The county checks the sender against the subject (a town may
publish only its own subjects), keeps the event and relays the very same bytes down to every
other participant (``down_subject(county, town, …)``). A town takes what the county relays from
its down stream, which buffers while the town or its link is down. Every step is one
transaction with the inbox or outbox row; a malformed or forged message is a dead letter.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao import outbox
from fengqiao.clock import Clock
from fengqiao.divisions import Tier, address_tokens, down_subject, event_subject, tier_of
from fengqiao.errors import FengqiaoError
from fengqiao.inbox import BadMessage, Handler
from fengqiao.security import audit
from fengqiao.telemetry import current_headers
from fengqiao.topology import Topology
from fengqiao.v1 import routing_pb2 as pb
from services.routing import jointrules, jointstore

JOINT_HUB = "fq-joint-hub"
JOINT_IN = "fq-joint-in"
ALERT_HUB = "fq-alert-hub"
ALERT_IN = "fq-alert-in"


def relayed_to(code: str, kind: str) -> str:
    """The down subjects of ``kind`` ("joint" or "alert") the county relays to town ``code``."""
    return f"fq.*.*.*.down.{address_tokens(code)}.{kind}.>"


def _messages(
    publisher: str, to: list[str], kind: str, event_type: str, event_id: str, data: bytes
) -> list[outbox.Message]:
    """The relay of one event down to each of ``to``; the msg id names the addressee, since the
    down stream deduplicates across its subjects."""
    headers = current_headers()
    return [
        outbox.Message(down_subject(publisher, code, kind, event_type), f"{event_id}.{code}", data, headers)
        for code in to
    ]


def record_joint(session: Session, *, event: pb.JointEvent, county: str, now: dt.datetime) -> pb.JointCase:
    """Record an event of this center: checked against the case here, numbered one above every
    event seen here, kept, and queued up to the hub (or, at the county, down to the participants).

    An event already recorded is a retry of the same client request (its id follows from the
    request id): the joint case is returned as it is. Two such retries in one group write share
    its session, so the second finds the first's event; in separate transactions the case's row
    lock orders them, and two openings collide on the case's key (the group then runs each alone)."""
    current = jointstore.get_joint(session, joint_id=event.joint_case_id, for_update=True)
    if current is not None and jointstore.has_event(session, event_id=event.id):
        return current
    event.lamport = jointstore.next_lamport(session, joint_id=event.joint_case_id)
    jointrules.apply_joint(current, event, county=county)  # raises when illegal here
    data = event.SerializeToString(deterministic=True)
    case = jointstore.add_event(session, event=event, data=data, county=county, now=now)
    kind = event.WhichOneof("payload") or ""
    if event.node == county:
        messages = _messages(county, jointrules.recipients(case, sender=county), "joint", kind, event.id, data)
    else:
        messages = [outbox.Message(event_subject(event.node, "joint", kind), event.id, data, current_headers())]
    outbox.enqueue_many(session, messages=messages, now=now)
    audit.record(session, [audit.Entry(now, event.node, event.actor, f"joint.{kind}", event.joint_case_id)])
    return case


def record_alert(session: Session, *, event: pb.RiskAlertEvent, now: dt.datetime) -> pb.RiskAlert:
    """Record a risk-alert event of this town and queue it up to the hub."""
    alert = jointrules.apply_alert(jointstore.get_alert(session, alert_id=event.alert_id), event)
    jointstore.put_alert(session, alert=alert)
    kind = event.WhichOneof("payload") or ""
    message = outbox.Message(
        event_subject(event.node, "alert", kind), event.id, event.SerializeToString(), current_headers()
    )
    outbox.enqueue_many(session, messages=[message], now=now)
    audit.record(session, [audit.Entry(now, event.node, event.actor, f"alert.{kind}", event.alert_id)])
    return alert


def _parse(message: type[Message], msg: Msg, what: str) -> Message:
    try:
        return message.FromString(msg.data)
    except DecodeError as exc:
        raise BadMessage(f"无法解析的{what}：{exc}") from exc


def _from_town(msg: Msg, node: str, kind: str, event_type: str) -> None:
    """A town publishes only on its own subjects: the subject vouches for the sender."""
    try:
        town = tier_of(node) is Tier.TOWN
    except FengqiaoError:
        town = False
    if not town or msg.subject != event_subject(node, kind, event_type):
        raise BadMessage(f"事件的发送中心 {node} 与主题 {msg.subject} 不符")


def joint_hub_handler(topology: Topology, clock: Clock) -> Handler:
    """The county's inbox handler: keep a town's joint-case event and relay it to the others."""
    county = topology.county.code

    def handle(session: Session, msg: Msg) -> None:
        event = _parse(pb.JointEvent, msg, "联合案件事件")
        assert isinstance(event, pb.JointEvent)
        kind = event.WhichOneof("payload") or ""
        _from_town(msg, event.node, "joint", kind)
        if not event.id or not event.joint_case_id:
            raise BadMessage("联合案件事件缺少编号或案件编号")
        if jointstore.has_event(session, event_id=event.id):
            return  # a copy of one already kept
        current = jointstore.get_joint(session, joint_id=event.joint_case_id, for_update=True)
        try:
            if kind == "opened":
                if current is not None:
                    raise BadMessage(f"联合案件 {event.joint_case_id} 已存在")
                neighbours = topology.node(event.node).neighbours
                jointrules.check_invitations(event.node, list(event.opened.invited), neighbours)
                jointrules.apply_joint(None, event, county=county)
            elif current is None or jointrules.participant(current, event.node) is None:
                raise BadMessage(f"{event.node} 不是联合案件 {event.joint_case_id} 的参与方")
        except FengqiaoError as exc:
            raise BadMessage(exc.message) from exc
        case = jointstore.add_event(session, event=event, data=msg.data, county=county, now=clock.now())
        to = jointrules.recipients(case, sender=event.node)
        outbox.enqueue_many(session, messages=_messages(county, to, "joint", kind, event.id, msg.data), now=clock.now())

    return handle


def joint_inbound_handler(node_code: str, county: str, clock: Clock) -> Handler:
    """A town's inbox handler: keep a joint-case event the county relayed here."""

    def handle(session: Session, msg: Msg) -> None:
        event = _parse(pb.JointEvent, msg, "联合案件事件")
        assert isinstance(event, pb.JointEvent)
        if not msg.subject.startswith(f"fq.{county}._._.down.") or event.node == node_code:
            raise BadMessage("联合案件事件不是县级中心转发的其他中心事件")
        if not event.id or not event.joint_case_id:
            raise BadMessage("联合案件事件缺少编号或案件编号")
        if jointstore.has_event(session, event_id=event.id):
            return  # a copy of one already kept
        if event.WhichOneof("payload") == "opened":
            if node_code not in event.opened.invited:
                raise BadMessage(f"联合案件 {event.joint_case_id} 没有邀请本中心")
        elif jointstore.get_joint(session, joint_id=event.joint_case_id) is None:
            raise BadMessage(f"本中心没有联合案件 {event.joint_case_id}")
        jointstore.add_event(session, event=event, data=msg.data, county=county, now=clock.now())

    return handle


def _apply_alert(session: Session, event: pb.RiskAlertEvent) -> pb.RiskAlert:
    try:
        return jointrules.apply_alert(jointstore.get_alert(session, alert_id=event.alert_id), event)
    except FengqiaoError as exc:
        raise BadMessage(exc.message) from exc


def alert_hub_handler(topology: Topology, clock: Clock) -> Handler:
    """The county's inbox handler: keep a town's alert (or acknowledgement) and relay it on."""
    county = topology.county.code

    def handle(session: Session, msg: Msg) -> None:
        event = _parse(pb.RiskAlertEvent, msg, "联防预警事件")
        assert isinstance(event, pb.RiskAlertEvent)
        kind = event.WhichOneof("payload") or ""
        _from_town(msg, event.node, "alert", kind)
        if kind == "raised":
            strangers = set(event.raised.to_nodes) - set(topology.node(event.node).neighbours)
            if strangers:
                raise BadMessage(f"{'、'.join(sorted(strangers))} 不是 {event.node} 的相邻乡镇")
        alert = _apply_alert(session, event)
        jointstore.put_alert(session, alert=alert)
        to = list(alert.to_nodes) if kind == "raised" else [alert.from_node]
        messages = _messages(county, to, "alert", kind, event.id, msg.data)
        outbox.enqueue_many(session, messages=messages, now=clock.now())

    return handle


def alert_inbound_handler(node_code: str, county: str) -> Handler:
    """A town's inbox handler: an alert to it, or a neighbour's acknowledgement of its own."""

    def handle(session: Session, msg: Msg) -> None:
        event = _parse(pb.RiskAlertEvent, msg, "联防预警事件")
        assert isinstance(event, pb.RiskAlertEvent)
        if not msg.subject.startswith(f"fq.{county}._._.down."):
            raise BadMessage("联防预警不是县级中心转发的")
        kind = event.WhichOneof("payload")
        current = jointstore.get_alert(session, alert_id=event.alert_id)
        if kind == "raised" and node_code not in event.raised.to_nodes:
            raise BadMessage(f"预警 {event.alert_id} 不是发给本中心的")
        if kind == "acknowledged" and (current is None or current.from_node != node_code):
            raise BadMessage(f"预警 {event.alert_id} 不是本中心发出的")
        jointstore.put_alert(session, alert=_apply_alert(session, event))

    return handle
