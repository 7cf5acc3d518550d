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
        contributed=contributed(session, sources, root=code, nodes=nodes, start=utc_start, end=utc_end),
    )


def contributed(
    session: Session,
    sources: Sequence[FigureSource],
    *,
    root: str,
    nodes: dict[str, NodeSpec],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, dict[str, int]]:
    """Each source's counts for every node of ``root``'s subtree (``nodes``), asked top down and
    only below a node where the source counted something: a source counts what lies at or below
    a node, so below a node with nothing every count is 0 too (most nodes in most periods; each
    ask is a few queries, and a county has over a hundred nodes)."""
    children: dict[str, list[str]] = {}
    for spec in nodes.values():
        if spec.parent:
            children.setdefault(spec.parent, []).append(spec.code)
    out: dict[str, dict[str, int]] = {c: {} for c in nodes}
    for source in sources:
        pending = [root]
        while pending:
            code = pending.pop()
            counts = dict(source(session, within=code, start=start, end=end))
            out[code].update(counts)
            if any(counts.values()):
                pending += children.get(code, [])
            else:
                for c in nodes:
                    if c != code and c.startswith(code):
                        out[c].update(dict.fromkeys(counts, 0))
    return out
