"""Who may write what: the one table of the writer each event type must come from, pure.

Every received message is checked twice against who sent it, in the inbox decode step
(``fengqiao.decode``): its claimed author (the event's ``node``) must be its sender — the node
whose subject it came on — and the author must be the writer this table names for its event type
in the aggregate as this node knows it (the case's holder, the directive's receiver …). A message
failing either is forged or exceeds its sender's authority: a dead letter whose reason starts with
``FORGED``, counted in the node's figures (``fengqiao_forged_messages``, ``/api/v1/nodes``).

The aggregates' own folds refuse the same steps for the local writers (a holder's own gRPC call);
they read the writer from here too, so there is one rule for both paths.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

from fengqiao.divisions import is_within
from fengqiao.v1 import assessment_pb2, case_pb2, routing_pb2

FORGED = "伪造或越权："
"""How the reason of a dead letter for a forged or overreaching message begins."""


class Writer(enum.Enum):
    """Who, in an aggregate, may write an event of a type; the value is how the operator reads it."""

    OPENER = "发起中心"  # the first event: any node, as itself (the sender check vouches for it)
    HOLDER = "承办中心"
    ADDRESSED = "上报接收中心"
    RECEIVER = "指令接收中心"
    PARTICIPANT = "联合案件参与方"
    ADDRESSEE = "预警接收乡镇"
    CENTER = "项目登记中心"


WRITERS: Mapping[str, Mapping[str, Writer]] = {
    "case": {
        "received": Writer.OPENER,
        "escalation_accepted": Writer.ADDRESSED,
        "escalation_refused": Writer.ADDRESSED,
    },
    "directive": {"issued": Writer.OPENER, "acknowledged": Writer.RECEIVER, "completed": Writer.RECEIVER},
    "joint": {"opened": Writer.OPENER},
    "alert": {"raised": Writer.OPENER, "acknowledged": Writer.ADDRESSEE},
    "project": {"registered": Writer.OPENER},
}
"""The writer of each event type that is not its kind's default (``DEFAULT_WRITERS``)."""

DEFAULT_WRITERS: Mapping[str, Writer] = {
    "case": Writer.HOLDER,  # every case step: triaged … archived, 督办, 吹哨, 上报 itself
    "joint": Writer.PARTICIPANT,  # answers, notes, members, tasks, sign-offs
    "project": Writer.CENTER,  # 四必评: assessments, gates, measures, hazards, linked cases
}

Owners = Mapping[Writer, Collection[str]]
"""Who holds each role in one aggregate, as the receiving node knows it."""


def writer_of(kind: str, event_type: str) -> Writer | None:
    """The writer of ``event_type`` events of ``kind``, None for a type the table does not know."""
    return WRITERS.get(kind, {}).get(event_type) or DEFAULT_WRITERS.get(kind)


def case_owners(case: case_pb2.Case) -> Owners:
    """A case's writers: its holder, and the center an escalation is addressed to."""
    return {Writer.HOLDER: [case.holder_node], Writer.ADDRESSED: [case.escalation_to] if case.escalation_to else []}


def directive_owners(directive: routing_pb2.Directive) -> Owners:
    """A directive's writer of answers: its receiver."""
    return {Writer.RECEIVER: [directive.to_node]}


def joint_owners(joint: routing_pb2.JointCase) -> Owners:
    """A joint case's writers: its participants (the invited ones included, so they can answer)."""
    return {Writer.PARTICIPANT: [p.node for p in joint.participants]}


def alert_owners(alert: routing_pb2.RiskAlert) -> Owners:
    """A risk alert's writers of acknowledgements: the towns it was sent to."""
    return {Writer.ADDRESSEE: list(alert.to_nodes)}


def project_owners(project: assessment_pb2.Project) -> Owners:
    """A project's writer: the center that registered it."""
    return {Writer.CENTER: [project.node]}


def misattributed(what: str, *, claimed: str, sender: str) -> str | None:
    """The reason a message whose author is ``claimed`` may not come from ``sender``, or None."""
    if claimed == sender:
        return None
    return f"{FORGED}{what}自称由 {claimed or '（空）'} 发出，实际发送中心为 {sender}"


SOURCE_HEADER = "Nats-Stream-Source"
"""The header the receiving node's own server sets on a message it sourced from another stream:
``<stream>[:<hash>] <seq> …`` — the stream of the node one hop away, whatever the message claims."""


def off_source(what: str, *, sender: str, source: str | None) -> str | None:
    """The reason a message whose subject names ``sender`` may not have come through the stream
    its ``SOURCE_HEADER`` names (None when the message is not sourced), or None.

    A child's events stream carries only its own subtree's events; a parent's down stream only
    what it and the centers above it sent down. So a child whose stream captured a sibling's
    subjects cannot pass them off as the sibling's (the source filter also keeps them out)."""
    if not source:
        return None
    stream = source.split(" ", 1)[0].split(":", 1)[0]
    events, down = stream.removeprefix("FQ_EVENTS_"), stream.removeprefix("FQ_DOWN_")
    if events != stream:
        if is_within(sender, events):
            return None
        return f"{FORGED}{what}的主题自称由 {sender} 发出，却来自 {events} 的事件流"
    if down != stream:
        if is_within(down, sender):
            return None
        return f"{FORGED}{what}的主题自称由 {sender} 发出，却来自 {down} 的下行流"
    return None


def overreach(what: str, kind: str, event_type: str, *, author: str, owners: Owners | None) -> str | None:
    """The reason ``author`` may not write an ``event_type`` event of ``kind`` in an aggregate
    whose writers are ``owners`` (None: the aggregate is new here), or None if it may."""
    writer = writer_of(kind, event_type)
    if writer is None:
        return None  # a type the table does not know: the fold refuses it with its own reason
    if writer is Writer.OPENER or owners is None:
        return None  # a new aggregate's first event, as itself; the folds refuse a second opening,
        # and any other event of an aggregate not known here
    allowed = list(owners.get(writer, ()))
    if author in allowed:
        return None
    return (
        f"{FORGED}{what}（{event_type}）由 {author} 发出，只有{writer.value} {'、'.join(allowed) or '（无）'} 可以写入"
    )
