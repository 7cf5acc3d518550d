"""The figures of a subtree at one moment: store reads folded by the pure figure code.

Run inside one read transaction (``Database.read``), so every node's figures, its staleness and
its children's come from the same state of the case log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlmodel import Session

from fengqiao.topology import NodeSpec, Topology
from services.assessment.store import AssessmentCounts, assessment_counts
from services.federation import figures, store
from services.federation.rules import Period
from services.routing.jointstore import JointCounts, joint_counts


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Rolled-up tallies, newest data and staleness of every node of a subtree."""

    root: str
    period: Period
    generated_at: dt.datetime
    stale_after: dt.timedelta
    nodes: dict[str, NodeSpec]
    tallies: dict[str, figures.Tally]
    latest: dict[str, dt.datetime | None]
    assessments: dict[str, AssessmentCounts]
    joint: dict[str, JointCounts]

    def stale(self, code: str) -> bool:
        return figures.is_stale(self.latest[code], now=self.generated_at, after=self.stale_after)

    def stale_nodes(self, code: str) -> list[str]:
        """Nodes at or below ``code`` whose data is stale."""
        return sorted(c for c in self.nodes if c.startswith(code) and self.stale(c))

    def children(self, code: str) -> list[NodeSpec]:
        return sorted((n for n in self.nodes.values() if n.parent == code), key=lambda n: n.code)


def newest_per_subtree(latest_by_node: dict[str, dt.datetime], codes: list[str]) -> dict[str, dt.datetime | None]:
    """For each code, the newest event written anywhere at or below it."""
    return {
        code: max((at for node, at in latest_by_node.items() if node.startswith(code)), default=None) for code in codes
    }


def take(
    session: Session,
    *,
    topology: Topology,
    code: str,
    period: Period,
    now: dt.datetime,
    stale_after: dt.timedelta,
) -> Snapshot:
    """The snapshot of ``code``'s subtree for ``period`` as of ``now``."""
    nodes = {n.code: n for n in topology.subtree(code)}
    cases = store.cases_received(session, within=code, start=period.start, end=period.end)
    by_origin = figures.tally_by_origin(figures.facts_of(c, now=now) for c in cases)
    latest = store.latest_by_node(session, within=code)
    utc_start, utc_end = period.start.astimezone(dt.UTC), period.end.astimezone(dt.UTC)
    return Snapshot(
        root=code,
        period=period,
        generated_at=now,
        stale_after=stale_after,
        nodes=nodes,
        tallies=figures.rollup(by_origin, list(nodes)),
        latest=newest_per_subtree(latest, list(nodes)),
        assessments={c: assessment_counts(session, within=c, start=utc_start, end=utc_end) for c in nodes},
        joint={c: joint_counts(session, within=c, start=utc_start, end=utc_end) for c in nodes},
    )
