"""Routing rules (pure): the way up the hierarchy from a holder."""

from __future__ import annotations

from fengqiao.topology import NodeSpec, Topology


def escalation_path(topology: Topology, holder: str) -> list[NodeSpec]:
    """The centers a case held at ``holder`` would go to, nearest first (小事不出村、大事不出镇)."""
    return topology.ancestors(holder)
