"""``rollup``: the figures of a whole county, in cases folded per second (issue: federation).

A county database (SQLite, as at the edge; the county may run PostgreSQL) is filled with
``CASES`` cases spread over 2 towns × 4 villages and a year, 70 % of them round the whole loop,
through the real store (``casestore.append_many``). Measured: ``snapshot.take`` for the county
and the year — read every case of the subtree, derive its facts, roll up every node's figures
and staleness. Baseline in the same run: the raw SQL underneath, ``SELECT origin_node, status,
count(*) … GROUP BY`` over the same rows (which yields two of the fifteen figures). Goal: a
county-year of 75,000 cases (25 towns × 3,000) in under 5 s, i.e. ≥ 15,000 cases/s.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select as sa_select

from bench.harness import BenchSettings, Result, benchmark
from fengqiao import migrations
from fengqiao.cases import store as casestore
from fengqiao.cases.records import CaseRecord
from fengqiao.clock import CHINA_TZ
from fengqiao.db import Database
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2
from harness.county import small_county
from host.node import figure_sources
from services.federation import rules, snapshot

log = logging.getLogger(__name__)
CASES = 20_000
GOAL_CASES_PER_S = 15_000.0
TOPOLOGY = small_county(towns=2, villages=4)
YEAR = rules.parse_period("2026")


def _event(case_id: str, seq: int, node: str, at: dt.datetime, field: str, payload: object) -> pb.CaseEvent:
    event = pb.CaseEvent(id=str(uuid.uuid4()), case_id=case_id, seq=seq, node=node, actor="bench")
    event.at.FromDatetime(at)
    getattr(event, field).CopyFrom(payload)
    return event


def case_events(rng: random.Random, village: str) -> list[pb.CaseEvent]:
    """One case's log: received, and for 70 % the whole loop to 回访."""
    at = YEAR.start.astimezone(dt.UTC) + dt.timedelta(seconds=rng.randrange(360 * 86400))
    cid = str(uuid.uuid4())
    intake = pb.Case(origin_node=village, division_code=village, receipt_no=cid[:18], category="邻里", grid="第1网格",
                     channel="网格员上报", reporter="网格员甲", response_class=pb.RESPONSE_CLASS_ROUTINE)  # fmt: skip
    intake.clock_start.FromDatetime(at)
    intake.deadline.FromDatetime(at + dt.timedelta(hours=24))
    events = [_event(cid, 1, village, at, "received", pb.Received(case=intake))]
    if rng.random() < 0.3:
        return events
    triaged = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
    triaged.deadline.FromDatetime(at + dt.timedelta(hours=48))
    slip = pb.AssignmentSlip(department="司法所", requirement="调处")
    feedback = pb.FeedbackSlip(result="已调解", mediated=True, mediation_level="网格员现场调解")
    steps: list[tuple[str, object]] = [
        ("triaged", triaged), ("assigned", pb.Assigned(slip=slip)), ("acknowledged", pb.Acknowledged()),
        ("started", pb.Started()), ("feedback", pb.FeedbackGiven(slip=feedback)),
        ("reviewed", pb.Reviewed(approved=True)), ("closed", pb.Closed(resolved_tier=common_pb2.TIER_VILLAGE)),
        ("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=rng.randint(3, 5)))),
    ]  # fmt: skip
    for seq, (field, payload) in enumerate(steps, start=2):
        events.append(_event(cid, seq, village, at + dt.timedelta(hours=seq * rng.uniform(1, 5)), field, payload))
    return events


def fill(db: Database, cases: int) -> None:
    rng = random.Random(8)
    villages = [n.code for n in TOPOLOGY.nodes if len(n.code) == 12]
    now = dt.datetime.now(dt.UTC)
    for start in range(0, cases, 1000):
        by_village: dict[str, list[casestore.Append]] = {}
        for _ in range(min(1000, cases - start)):
            village = rng.choice(villages)
            by_village.setdefault(village, []).append(casestore.Append(None, case_events(rng, village), {}))
        for village, appends in by_village.items():
            db.transaction(lambda s, v=village, a=appends: casestore.append_many(s, appends=a, node_code=v, now=now))  # type: ignore[misc]


def timed(fn: object, repeat: int = 3) -> float:
    """The best of ``repeat`` runs of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


@benchmark("rollup")
def rollup(settings: BenchSettings) -> Result:
    """Cases rolled up into every node's figures per second vs a raw GROUP BY count."""
    sources = figure_sources()  # the 四必评 and 三联 counts as a node takes them (imports their tables)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'county.db'}")
        migrations.upgrade(db.url)
        try:
            fill(db, CASES)
            now = dt.datetime(2027, 1, 2, tzinfo=CHINA_TZ)
            county = TOPOLOGY.county.code

            def figures() -> None:
                snap = db.transaction(
                    lambda s: snapshot.take(
                        s,
                        topology=TOPOLOGY,
                        code=county,
                        period=YEAR,
                        now=now,
                        stale_after=dt.timedelta(hours=48),
                        sources=sources,
                    )
                )
                assert snap.tallies[county].received == CASES

            table = CaseRecord.__table__  # type: ignore[attr-defined]
            grouped = sa_select(table.c.origin_node, table.c.status, func.count()).group_by(
                table.c.origin_node, table.c.status
            )

            def raw() -> None:
                rows = db.transaction(lambda s: s.connection().execute(grouped).all())
                assert sum(r[2] for r in rows) == CASES

            ours, baseline = timed(figures), timed(raw)
        finally:
            db.close()
    log.info("rollup of %d cases: %.3f s; raw GROUP BY %.4f s", CASES, ours, baseline)
    return Result(
        name="rollup",
        value=CASES / ours,
        unit="cases/s",
        baseline_name="raw SQL GROUP BY count",
        baseline_value=CASES / baseline,
        goal_ratio=0.0,
        better="higher",
        goal_value=GOAL_CASES_PER_S,
    )
