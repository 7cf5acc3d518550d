"""A county-year of cases for ``figures_county_year``, filled through the real store and cached.

A county of 25 towns × 4 villages; ``cases`` cases received over 2026 at its villages (most)
and towns, stored at the county as it stores its subtree's events: replicated
(``casestore.store_replicated_many``), about nine events a case. Cases vary in category,
channel, grid worker, department; some are returned, escalated to the town, still open (some
overdue), reopened after an unsatisfied 回访, summoned departments by 吹哨.

The filled database is kept between runs (SQLite: a file under ``bench/.cache``; PostgreSQL: a
database on the server) under a key of this file's text and the count, so a run fills only
when the cases it would make changed. A database is marked filled only once complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import logging
import random
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fengqiao import migrations
from fengqiao.cases import store as casestore
from fengqiao.clock import CHINA_TZ
from fengqiao.db import Database
from fengqiao.divisions import parent_code
from fengqiao.errors import FengqiaoError
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2
from harness.county import small_county

log = logging.getLogger(__name__)
TOPOLOGY = small_county(towns=25, villages=4)
COUNTY = TOPOLOGY.county.code
CACHE = Path(__file__).resolve().parent / ".cache"
CATEGORIES = ("邻里纠纷", "婚姻家庭", "土地权属", "劳资纠纷", "物业纠纷", "消费纠纷", "交通事故", "其他")
DEPARTMENTS = ("司法所", "派出所", "市监所", "妇联", "自然资源所", "人社所", "住建办", "交警中队", "信访办", "村调委会")
CHANNELS = ("网格员上报", "网格员上报", "群众来访", "12345热线", "网上信访")
YEAR_START = dt.datetime(2026, 1, 1, tzinfo=CHINA_TZ).astimezone(dt.UTC)
FILLED = "bench.filled"


def key_of(cases: int) -> str:
    """What the filled database depends on: how cases are made and stored, and how many."""
    made = "".join(inspect.getsource(f) for f in (_Log, case_events, fill)) + repr((CATEGORIES, DEPARTMENTS, CHANNELS))
    return hashlib.sha256(f"{made}{YEAR_START}{TOPOLOGY}{cases}".encode()).hexdigest()[:12]


class _Log:
    def __init__(self, rng: random.Random, origin: str, at: dt.datetime) -> None:
        self.rng, self.at, self.case_id = rng, at, str(uuid.uuid4())
        self.events: list[pb.CaseEvent] = []

    def add(self, node: str, field: str, payload: object, *, hours: float | None = None) -> None:
        self.at += dt.timedelta(hours=self.rng.uniform(0.5, 8) if hours is None else hours)
        event = pb.CaseEvent(
            id=str(uuid.uuid4()), case_id=self.case_id, seq=len(self.events) + 1, node=node, actor="bench"
        )
        event.at.FromDatetime(self.at)
        getattr(event, field).CopyFrom(payload)
        self.events.append(event)


def case_events(rng: random.Random, origin: str) -> list[pb.CaseEvent]:
    """One case's log (valid for ``lifecycle.apply``)."""
    at = YEAR_START + dt.timedelta(seconds=rng.randrange(364 * 86400))
    log = _Log(rng, origin, at)
    channel = rng.choice(CHANNELS)
    reporter = f"网格员{rng.randint(1, 3)}" if channel == "网格员上报" else ""
    intake = pb.Case(
        origin_node=origin, division_code=origin, receipt_no=f"{origin}-{log.case_id[:8]}",
        category=rng.choice(CATEGORIES), grid=f"第{rng.randint(1, 6)}网格", channel=channel, reporter=reporter,
        response_class=pb.RESPONSE_CLASS_ROUTINE, description="双方因琐事发生争执，请求调解。",
    )  # fmt: skip
    intake.clock_start.FromDatetime(at)
    intake.deadline.FromDatetime(at + dt.timedelta(hours=24))
    log.add(origin, "received", pb.Received(case=intake), hours=0)
    if rng.random() < 0.08:
        return log.events  # just taken in
    holder = origin
    if rng.random() < 0.1 and len(origin) == 12:
        above = parent_code(origin) or origin
        log.add(
            origin, "escalation_requested", pb.EscalationRequested(to_node=above, reason="跨村纠纷", rule_id="operator")
        )
        accepted = pb.EscalationAccepted()
        accepted.deadline.FromDatetime(log.at + dt.timedelta(hours=80))
        log.add(above, "escalation_accepted", accepted, hours=1)
        holder = above
    triaged = pb.Triaged(category=intake.category, response_class=pb.RESPONSE_CLASS_ROUTINE)
    triaged.deadline.FromDatetime(log.at + dt.timedelta(hours=rng.choice((48, 72, 120))))
    log.add(holder, "triaged", triaged)
    for _round in range(2):
        department = rng.choice(DEPARTMENTS)
        log.add(holder, "assigned", pb.Assigned(slip=pb.AssignmentSlip(department=department, requirement="依法调处")))
        if rng.random() < 0.08:
            log.add(holder, "returned", pb.Returned(reason="不属本部门职责"))
            department = rng.choice(DEPARTMENTS)
            log.add(
                holder, "assigned", pb.Assigned(slip=pb.AssignmentSlip(department=department, requirement="依法调处"))
            )
        if rng.random() < 0.05:
            return log.events  # never acknowledged
        log.add(holder, "acknowledged", pb.Acknowledged(department=department))
        log.add(holder, "started", pb.Started())
        if _round == 0 and rng.random() < 0.05:
            summons = pb.Summons(department=rng.choice(DEPARTMENTS), presence="on_call")
            summons.report_by.FromDatetime(log.at + dt.timedelta(hours=20))
            log.add(holder, "whistled", pb.Whistled(reason="多部门联动", summons=[summons]))
            log.add(holder, "reported_for_duty", pb.ReportedForDuty(department=summons.department))
        if rng.random() < 0.07:
            return log.events  # still being handled
        slip = pb.FeedbackSlip(result="已调解", mediated=rng.random() < 0.9, mediation_level="网格员现场调解")
        log.add(holder, "feedback", pb.FeedbackGiven(slip=slip), hours=rng.uniform(1, 60))
        log.add(holder, "reviewed", pb.Reviewed(approved=True))
        tier = common_pb2.TIER_VILLAGE if len(holder) == 12 else common_pb2.TIER_TOWN
        log.add(holder, "closed", pb.Closed(summary="已化解", resolved_tier=tier))
        if rng.random() < 0.1:
            return log.events
        score = rng.choices((5, 4, 3, 2), weights=(60, 25, 10, 5))[0]
        log.add(holder, "follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=score, method="电话回访")))
        if score <= 2:
            reopened = pb.Reopened(reason="回访不满意")
            reopened.deadline.FromDatetime(log.at + dt.timedelta(hours=48))
            log.add(holder, "reopened", reopened, hours=0)
            continue
        return log.events
    return log.events


def fill(db: Database, cases: int, *, seed: int = 2026) -> None:
    """Store ``cases`` cases at the county, a few thousand events per transaction."""
    rng = random.Random(seed)
    origins = [n.code for n in TOPOLOGY.nodes if len(n.code) == 12] * 9 + [
        n.code for n in TOPOLOGY.nodes if len(n.code) == 9
    ]
    now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    started, pending = time.monotonic(), []  # type: float, list[pb.CaseEvent]
    for i in range(cases):
        pending += case_events(rng, rng.choice(origins))
        if len(pending) >= 4000 or i == cases - 1:
            db.transaction(lambda s, e=pending: casestore.store_replicated_many(s, events=e, now=now))  # type: ignore[misc]
            pending = []
        if i % 10_000 == 9_999:
            log.info("filled %d cases (%.0f cases/s)", i + 1, (i + 1) / (time.monotonic() - started))


def _is_filled(db: Database) -> bool:
    try:
        value = db.transaction(
            lambda s: s.execute(text("SELECT value FROM counter WHERE name = :n"), {"n": FILLED}).scalar()
        )
    except (SQLAlchemyError, FengqiaoError):  # no schema yet: not filled
        return False
    return bool(value)


def filled(cases: int, *, postgres_admin: str | None = None, key: str = "") -> Database:
    """The county's database filled with ``cases`` cases: SQLite, or PostgreSQL on the server
    of ``postgres_admin`` (a URL of a database to create others from); upgraded to this code's
    schema (which, for facts, fills them from the events as the migration does). ``key``
    names the filled database to reuse instead of this code's own."""
    name = f"figures_county_year_{key or key_of(cases)}"
    if postgres_admin is None:
        CACHE.mkdir(exist_ok=True)
        path = CACHE / f"{name}.db"
        url = f"sqlite:///{path}"
    else:
        admin = make_url(postgres_admin).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        target = make_url(postgres_admin).set(drivername="postgresql+psycopg", database=name)
        url = target.render_as_string(hide_password=False)
    db = Database(url)
    if _is_filled(db):
        t0 = time.monotonic()
        migrations.upgrade(url)
        log.info("reusing %s (upgrade %.1f s)", name, time.monotonic() - t0)
        _settled(postgres_admin, url)
        return db
    db.close()
    if postgres_admin is None:
        for leftover in CACHE.glob(f"{name}.db*"):
            leftover.unlink()
    else:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(url)
    migrations.upgrade(url)
    t0 = time.monotonic()
    fill(db, cases)
    db.transaction(lambda s: s.execute(text("INSERT INTO counter (name, value) VALUES (:n, 1)"), {"n": FILLED}))
    log.info("filled %s with %d cases in %.0f s", name, cases, time.monotonic() - t0)
    _settled(postgres_admin, url)
    return db


def _settled(postgres_admin: str | None, url: str) -> None:
    """PostgreSQL as autovacuum leaves a county's database between bursts of writes: vacuumed
    (index-only scans of the covering indexes) and analysed."""
    if postgres_admin is not None:
        with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
