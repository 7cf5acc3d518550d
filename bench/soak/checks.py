"""The soak's checks, read from every node's own store and the county's figures once the
county is quiet: no case lost, none doubled, one holder each, every figure equal to a
recompute from the raw events."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable

from sqlalchemy import text

from bench.recompute import expected_of, observed
from bench.soak.calls import Nodes, persist
from bench.soak.cases import CaseLedger
from fengqiao.cases import lifecycle
from fengqiao.db import Database
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import federation_pb2
from services.federation import rules

ARCHIVED = pb.CASE_STATUS_ARCHIVED


@dataclasses.dataclass
class Census:
    """One node's store: each case's holder and status, its events and dead letters."""

    cases: dict[str, tuple[str, int]]
    events: int
    distinct_events: int
    seq_gaps: list[str]
    dead_letters: list[str]


async def census(url: str) -> Census:
    db = Database(url)
    try:
        cases = await db.run(lambda s: s.execute(text("SELECT id, holder_node, status FROM case_record")).all())
        events = await db.run(lambda s: s.execute(text("SELECT id, case_id, seq FROM case_event")).all())
        dead = await db.run(lambda s: s.execute(text("SELECT consumer, reason FROM dead_letter")).all())
    finally:
        db.close()
    seqs: dict[str, list[int]] = collections.defaultdict(list)
    for _, case_id, seq in events:
        seqs[case_id].append(seq)
    gaps = [c for c, numbers in seqs.items() if sorted(numbers) != list(range(1, len(numbers) + 1))]
    return Census(
        cases={row[0]: (row[1], row[2]) for row in cases},
        events=len(events),
        distinct_events=len({row[0] for row in events}),
        seq_gaps=gaps,
        dead_letters=[f"{row[0]}: {row[1]}" for row in dead],
    )


def copies(topology: Topology, origin: str) -> list[str]:
    """The centers keeping a copy of a case taken in at ``origin``: it and every ancestor."""
    return [origin, *(n.code for n in topology.ancestors(origin))]


async def settled(
    topology: Topology, urls: dict[str, str], ledger: CaseLedger, *, within_s: float
) -> dict[str, Census]:
    """Every node's census, once each copy of every archived case shows it archived (or when
    ``within_s`` runs out: the checks then say what is missing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        found = dict(zip(urls, await asyncio.gather(*(census(u) for u in urls.values())), strict=True))
        if loop.time() > deadline or not _unsettled(topology, found, ledger):
            return found
        await asyncio.sleep(2.0)


def _unsettled(topology: Topology, found: dict[str, Census], ledger: CaseLedger) -> list[str]:
    waiting = []
    origin = {cid: ledger.requests[rid].division_code for rid, cid in ledger.case_of.items()}
    for cid in ledger.archived:
        for code in copies(topology, origin[cid]):
            if found[code].cases.get(cid, ("", 0))[1] != ARCHIVED:
                waiting.append(f"{cid}@{code}")
    return waiting


def case_problems(topology: Topology, found: dict[str, Census], ledger: CaseLedger) -> dict[str, list[str]]:
    """Problems by check: lost, duplicate, holder."""
    origin = {cid: ledger.requests[rid].division_code for rid, cid in ledger.case_of.items()}
    lost = [f"request {rid} never accepted" for rid in ledger.requests if rid not in ledger.case_of]
    lost += [f"{key} unfinished: {why}" for key, why in ledger.unfinished.items()]
    doubled, holders = [], []
    if len(set(ledger.case_of.values())) != len(ledger.case_of):
        doubled.append("two requests got the same case id")
    for cid, village in origin.items():
        seen = {code: found[code].cases.get(cid) for code in copies(topology, village)}
        lost += [f"{cid} missing at {code}" for code, copy in seen.items() if copy is None]
        held = {copy[0] for copy in seen.values() if copy is not None}
        if cid in ledger.holder and held != {ledger.holder[cid]}:
            holders.append(f"{cid}: holders {sorted(held)}, driven to {ledger.holder[cid]}")
        if cid in ledger.archived and {copy[1] for copy in seen.values() if copy is not None} != {ARCHIVED}:
            holders.append(f"{cid}: not archived at every copy")
    for code, node in found.items():
        extra = set(node.cases) - set(origin)
        doubled += [f"{code}: {len(extra)} cases nobody took in, e.g. {sorted(extra)[:3]}"] if extra else []
        if node.events != node.distinct_events:
            doubled.append(f"{code}: {node.events - node.distinct_events} events stored twice")
        doubled += [f"{code}: case {c} has missing or repeated sequence numbers" for c in node.seq_gaps[:5]]
        lost += [f"{code}: dead letter {d}" for d in node.dead_letters[:5]]
    return {"no case lost": lost, "no duplicate": doubled, "one holder per case": holders}


async def county_logs(url: str) -> list[list[pb.CaseEvent]]:
    """Every case's raw events as the county stored them."""
    db = Database(url)
    try:
        rows = await db.run(
            lambda s: s.execute(text("SELECT case_id, data FROM case_event ORDER BY case_id, seq")).all()
        )
    finally:
        db.close()
    logs: dict[str, list[pb.CaseEvent]] = collections.defaultdict(list)
    for case_id, data in rows:
        logs[case_id].append(pb.CaseEvent.FromString(data))
    return list(logs.values())


def months(first: dt.datetime, last: dt.datetime) -> list[str]:
    """The labels of the months from ``first`` to ``last`` (China time), inclusive."""
    labels, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return labels


async def _stats(nodes: Nodes, county: str, period: str) -> federation_pb2.NodeStats:
    request = federation_pb2.GetNodeStatsRequest(code=county, period=period, include_children=True)
    return await nodes.federation(county).GetNodeStats(request)


def _tree(stats: federation_pb2.NodeStats) -> Iterable[federation_pb2.NodeStats]:
    yield stats
    for child in stats.children:
        yield from _tree(child)


async def figure_problems(
    nodes: Nodes, topology: Topology, logs: list[list[pb.CaseEvent]], periods: list[str]
) -> tuple[list[str], int]:
    """Each period's figures of every node as the county gives them, against the recompute;
    returns the problems and how many node-period figure sets were compared."""
    county = topology.county.code
    cases = [lifecycle.fold(log) for log in logs]
    problems, compared = [], 0
    for label in periods:
        stats = await persist(functools.partial(_stats, nodes, county, label), what=f"stats {label}")
        now = stats.generated_at.ToDatetime(tzinfo=dt.UTC)
        period = rules.parse_period(label)
        for node in _tree(stats):
            want = expected_of(cases, node.code, period, now=now)
            got = observed(node)
            compared += 1
            if got != want:
                diff = {k: (got[k], want[k]) for k in want if got.get(k) != want[k]}
                problems.append(f"{node.code} {label}: figure ≠ recompute {diff}")
    return problems, compared
