"""Routing rules (pure): the way up the hierarchy from a holder, 上报 and its acceptance."""

from __future__ import annotations

import datetime as dt

from fengqiao.divisions import parent_code
from fengqiao.errors import IllegalTransition
from fengqiao.topology import NodeSpec, Topology
from fengqiao.v1 import case_pb2 as pb
from services.routing.config import RoutingSettings


def escalation_path(topology: Topology, holder: str) -> list[NodeSpec]:
    """The centers a case held at ``holder`` would go to, nearest first (小事不出村、大事不出镇)."""
    return topology.ancestors(holder)


def escalation_request(case: pb.Case, *, reason: str, rule_id: str, rule_name: str) -> pb.EscalationRequested:
    """The 上报 of a case to the tier above its holder."""
    above = parent_code(case.holder_node)
    if above is None:
        raise IllegalTransition("县级中心没有上一级，不能上报")
    return pb.EscalationRequested(to_node=above, reason=reason, rule_id=rule_id, rule_name=rule_name)


def acceptance(now: dt.datetime, settings: RoutingSettings) -> pb.EscalationAccepted:
    """Taking an escalated case: the new holder's clock starts now."""
    accepted = pb.EscalationAccepted()
    accepted.deadline.FromDatetime(now + dt.timedelta(hours=settings.accepted_hours))
    return accepted
