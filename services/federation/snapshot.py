"""The figures of a subtree at one moment: store reads folded by the pure figure code.

The tallies are SQL sums over the case facts, one per origin node, rolled up here by
division-code prefix. Run inside one read transaction (``Database.read``), so every node's figures, its staleness and
its children's come from the same state of the case log. The figures other services keep (四必评
assessments, 三联 joint cases) come from the node's figure sources, read in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlmodel import Session

from fengqiao.service import FigureSource
from fengqiao.topology import NodeSpec, Topology
from services.federation import figures, store
from services.federation.rules import Period


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
    contributed: dict[str, dict[str, int]]  # per node, the figure sources' counts by NodeStats field

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
    sources: Sequence[FigureSource] = (),
) -> Snapshot:
    """The snapshot of ``code``'s subtree for ``period`` as of ``now``, with the counts of
    ``sources`` (the node's figure sources) for every node."""
    nodes = {n.code: n for n in topology.subtree(code)}
    by_origin = store.tallies_by_origin(session, within=code, start=period.start, end=period.end, now=now)
    latest = store.latest_of(session, nodes=list(nodes))
    utc_start, utc_end = period.start.astimezone(dt.UTC), period.end.astimezone(dt.UTC)
    return Snapshot(
        root=code,
        period=period,
        generated_at=now,
        stale_after=stale_after,
        nodes=nodes,
        tallies=figures.rollup(by_origin, list(nodes)),
        latest=newest_per_subtree(latest, list(nodes)),
        contributed={
            c: {
                name: count
                for source in sources
                for name, count in source(session, within=c, start=utc_start, end=utc_end).items()
            }
            for c in nodes
        },
    )
