"""The figures summed in SQL over the stored facts equal the pure fold's (the definition), for
random and adversarial delivery: shuffled, duplicated, in batches, late (with gaps that wait),
escalated, reopened, called by 吹哨 — through replication and through the holder's own record
step, at any moment of the delivery, on SQLite and PostgreSQL. And ``rebuild`` gives the very
rows the folds kept, or the new ones after a definition changes."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bench.recompute import expected, observed
from fengqiao import migrations
from fengqiao.cases import facts, lifecycle, rebuild
from fengqiao.cases import store as casestore
from fengqiao.clock import CHINA_TZ
from fengqiao.db import Database
from fengqiao.errors import FengqiaoError
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2
from harness.county import small_county
from services.federation import figures, rankings, rules, snapshot, store, views
from tests.services.federation.townlog import COUNTY, DEPARTMENTS, TOWN, VILLAGES, CaseLog, make_logs

START = dt.datetime(2026, 11, 1, tzinfo=CHINA_TZ)
TOPOLOGY = small_county(towns=1, villages=len(VILLAGES))
CODES = (COUNTY, TOWN, *VILLAGES)
PERIODS = (rules.parse_period("2026-11"), rules.parse_period("2026-11-10"), rules.parse_period(""))
QUICK = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the database is wiped per example
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking through a database takes minutes
)
TABLES = ("case_event", "case_record", "case_fact", "assignment_fact", "call_fact", "outbox", "audit_log")


def whistled_logs(seed: int, count: int) -> list[CaseLog]:
    """Cases handled with 吹哨: departments summoned, some reporting in time, some late, some never."""
    rng = random.Random(seed)
    logs = []
    for i in range(count):
        origin = VILLAGES[i % len(VILLAGES)]
        at = START + dt.timedelta(days=rng.uniform(0, 20))
        log = CaseLog(rng, origin, at, pb.Case(division_code=origin, category="邻里纠纷", channel="群众来访"))
        log.add(origin, "triaged", log.deadline(48))
        slip = pb.AssignmentSlip(department=rng.choice(DEPARTMENTS), requirement="依法调处")
        log.add(origin, "assigned", pb.Assigned(slip=slip))
        log.add(origin, "acknowledged", pb.Acknowledged(department=slip.department))
        called = rng.sample(DEPARTMENTS, 2)
        summons = []
        for department in called:
            s = pb.Summons(department=department, presence="on_call")
            s.report_by.FromDatetime(log.at + dt.timedelta(hours=rng.choice((7, 14))))
            summons.append(s)
        log.add(origin, "whistled", pb.Whistled(reason="多部门联动", summons=summons))
        for department in called:
            if rng.random() < 0.7:
                log.add(origin, "reported_for_duty", pb.ReportedForDuty(department=department))
        log.add(origin, "started", pb.Started())
        if rng.random() < 0.6:
            log.add(
                origin,
                "feedback",
                pb.FeedbackGiven(
                    slip=pb.FeedbackSlip(result="已调解", mediated=True, mediation_level="网格员现场调解")
                ),
            )
            log.add(origin, "reviewed", pb.Reviewed(approved=True))
            log.add(origin, "closed", pb.Closed(summary="已化解", resolved_tier=common_pb2.TIER_VILLAGE))
        logs.append(log)
    return logs


def every_log(seed: int) -> list[list[pb.CaseEvent]]:
    logs = make_logs(seed, start=START, days=26, per_node=4, late=VILLAGES[2]) + whistled_logs(seed, 6)
    return [log.events for log in logs]


def prefixes(stored: Sequence[pb.CaseEvent]) -> list[list[pb.CaseEvent]]:
    """Each case's log as stored, up to its first gap (what the projection folds)."""
    by_case: dict[str, dict[int, pb.CaseEvent]] = {}
    for event in stored:
        by_case.setdefault(event.case_id, {})[event.seq] = event
    out = []
    for seqs in by_case.values():
        log, seq = [], 1
        while seq in seqs:
            log.append(seqs[seq])
            seq += 1
        if log:
            out.append(log)
    return out


def fold_cases(logs: Sequence[Sequence[pb.CaseEvent]]) -> list[pb.Case]:
    out = []
    for log in logs:
        case = None
        for event in log:
            try:
                case = lifecycle.apply(case, event)
            except FengqiaoError:
                break
        if case is not None:
            out.append(case)
    return out


def fact_rows(db: Database) -> dict[str, list[tuple[object, ...]]]:
    def read(session: object) -> dict[str, list[tuple[object, ...]]]:
        return {
            table: sorted(tuple(r) for r in session.execute(text(f"SELECT * FROM {table}")))  # type: ignore[attr-defined]
            for table in ("case_fact", "assignment_fact", "call_fact")
        }

    return db.transaction(read)


def assert_figures_equal_the_fold(db: Database, stored: Sequence[pb.CaseEvent], *, now: dt.datetime) -> None:
    logs = prefixes(stored)
    cases = fold_cases(logs)
    for period in PERIODS:
        cohort = [c for c in cases if period.start <= c.received_at.ToDatetime(tzinfo=dt.UTC) < period.end]
        fold = figures.rollup(figures.tally_by_origin(figures.facts_of(c, now=now) for c in cohort), CODES)

        def sums(session: object, p: rules.Period = period) -> dict[str, figures.Tally]:
            by_origin = store.tallies_by_origin(session, within=COUNTY, start=p.start, end=p.end, now=now)  # type: ignore[arg-type]
            return figures.rollup(by_origin, CODES)

        assert db.transaction(sums) == fold, period.label
        ids = {c.id for c in cohort}
        cohort_logs = [log for log in logs if log[0].case_id in ids]
        for code in (TOWN, VILLAGES[0]):
            in_sql = db.transaction(
                lambda s, c=code, p=period: store.department_tallies(s, within=c, start=p.start, end=p.end, now=now)  # type: ignore[misc]
            )
            mine = [log for log in cohort_logs if log[0].node.startswith(code)]
            assert in_sql == rankings.department_tallies(mine, now=now), (period.label, code)
            workers = db.transaction(
                lambda s, c=code, p=period: store.grid_worker_tallies(s, within=c, start=p.start, end=p.end)  # type: ignore[misc]
            )
            assert workers == rankings.grid_worker_tallies([x for x in cohort if x.origin_node.startswith(code)])


@pytest.fixture
def db(database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(database_url("facts"))
    migrations.upgrade(database.url)
    try:
        yield database
    finally:
        database.close()


def wipe(db: Database) -> None:
    def run(session: object) -> None:
        for table in TABLES:
            session.execute(text(f"DELETE FROM {table}"))  # type: ignore[attr-defined]

    db.transaction(run)


@settings(QUICK, max_examples=6)
@given(
    seed=st.integers(0, 10_000),
    order=st.sampled_from(["shuffled", "reversed", "in order"]),
    twice=st.floats(0, 0.5),
    held=st.floats(0, 0.3),
    batch=st.sampled_from([3, 20, 1000]),
    hours=st.integers(0, 24 * 40),
)
def test_replicated_figures_in_sql_equal_the_fold_at_every_stage(
    db: Database, seed: int, order: str, twice: float, held: float, batch: int, hours: int
) -> None:
    wipe(db)
    rng = random.Random(seed)
    events = [e for log in every_log(seed) for e in log]
    stream = events + rng.sample(events, int(len(events) * twice))
    if order == "shuffled":
        rng.shuffle(stream)
    elif order == "reversed":
        stream.reverse()
    late = set(rng.sample(range(len(stream)), int(len(stream) * held)))
    first = [e for i, e in enumerate(stream) if i not in late]
    now = START + dt.timedelta(hours=hours)
    stored: list[pb.CaseEvent] = []
    for part in (first, stream):  # the late ones come with a second delivery of everything
        for offset in range(0, len(part), batch):
            chunk = part[offset : offset + batch]
            db.transaction(lambda s, c=chunk: casestore.store_replicated_many(s, events=c, now=now))  # type: ignore[misc]
        stored += part
        assert_figures_equal_the_fold(db, stored, now=now)
    kept = fact_rows(db)
    db.transaction(lambda s: rebuild.rebuild_batch(s.connection(), [log[0].case_id for log in every_log(seed)]))
    assert fact_rows(db) == kept


@settings(QUICK, max_examples=4)
@given(seed=st.integers(0, 10_000), batch=st.sampled_from([1, 3, 40]))
def test_figures_of_cases_recorded_by_their_holder_in_any_interleaving_equal_the_fold(
    db: Database, seed: int, batch: int
) -> None:
    wipe(db)
    rng = random.Random(seed)
    logs = every_log(seed)
    pending = {log[0].case_id: list(log) for log in logs}
    states: dict[str, pb.Case | None] = dict.fromkeys(pending)
    now = START + dt.timedelta(days=40)
    while pending:
        appends, picked = [], rng.sample(sorted(pending), min(batch, len(pending)))
        for case_id in picked:
            log = pending[case_id]
            take = rng.randint(1, len(log))
            appends.append(casestore.Append(states[case_id], log[:take], {}))
            pending[case_id] = log[take:]
            if not pending[case_id]:
                del pending[case_id]
        node = appends[0].events[0].node
        done = db.transaction(
            lambda s, a=appends, n=node: casestore.append_many(s, appends=a, node_code=n, now=now)  # type: ignore[misc]
        )
        states.update((state.id, state) for state in done)
    stored = [e for log in logs for e in log]
    assert_figures_equal_the_fold(db, stored, now=now)
    snap = db.transaction(
        lambda s: snapshot.take(
            s, topology=TOPOLOGY, code=TOWN, period=PERIODS[0], now=now, stale_after=dt.timedelta(days=9)
        )
    )
    assert observed(views.node_stats(snap, TOWN, include_children=False)) == expected(logs, TOWN, PERIODS[0], now=now)


def test_a_changed_on_time_rule_gives_the_folds_new_figures_after_a_rebuild(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = every_log(17)
    now = START + dt.timedelta(days=40)
    db.transaction(lambda s: casestore.store_replicated_many(s, events=[e for log in logs for e in log], now=now))
    period = PERIODS[0]

    def sql() -> figures.Tally:
        return db.transaction(
            lambda s: figures.rollup(
                store.tallies_by_origin(s, within=TOWN, start=period.start, end=period.end, now=now),
                [TOWN],
            )[TOWN]
        )

    def fold() -> figures.Tally:
        return figures.rollup(
            figures.tally_by_origin(
                figures.facts_of(c, now=now)
                for c in fold_cases(logs)
                if c.origin_node.startswith(TOWN)
                and period.start <= c.received_at.ToDatetime(tzinfo=dt.UTC) < period.end
            ),
            [TOWN],
        )[TOWN]

    before = sql()
    assert before == fold() and 0 < before.on_time < before.closed
    # the new rule: a day's grace after the deadline
    grace = dt.timedelta(days=1)
    monkeypatch.setattr(
        facts,
        "closed_on_time",
        lambda closed_at, deadline: deadline is None or closed_at is None or closed_at <= deadline + grace,
    )
    assert fold().on_time > before.on_time  # the definition changed …
    assert sql() == before  # … the stored facts not yet
    lines: list[rebuild.Progress] = []
    done = rebuild.rebuild(db.engine.begin, batch=7, progress=lines.append)
    assert done.done == done.total == len(logs)
    assert lines[-1] == done and len(lines) > 2
    assert sql() == fold()


def test_rebuild_in_worker_processes_keeps_a_case_a_fold_changed_meanwhile(db: Database) -> None:
    logs = every_log(23)
    now = START + dt.timedelta(days=40)
    head = [e for log in logs for e in log[:-1]]
    db.transaction(lambda s: casestore.store_replicated_many(s, events=head, now=now))
    ids = sorted(log[0].case_id for log in logs)
    made = db.transaction(lambda s: rebuild.fact_rows(rebuild._read_logs(s.connection(), ids)))
    # meanwhile the last event of every case arrives and is folded, facts and all
    db.transaction(lambda s: casestore.store_replicated_many(s, events=[log[-1] for log in logs], now=now))
    kept = fact_rows(db)
    db.transaction(lambda s: rebuild._write_rows(s.connection(), ids, made))  # rows made before it
    assert fact_rows(db) == kept
    db.transaction(lambda s: s.execute(text("DELETE FROM case_fact")))
    done = rebuild.rebuild(db.engine.begin, batch=9, workers=2)
    assert done.done == len(logs) and fact_rows(db) == kept
