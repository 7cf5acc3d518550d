"""红黑榜: assignments followed through a case log, small samples and ties."""

from __future__ import annotations

import datetime as dt

from services.federation import rankings
from services.federation.rankings import DepartmentTally, place, wilson_lower
from tests.services.federation.townlog import make_logs

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def test_wilson_bound_prefers_the_larger_sample_at_the_same_rate() -> None:
    assert wilson_lower(3, 3) < wilson_lower(95, 100) < wilson_lower(100, 100)
    assert wilson_lower(0, 0) == 0.0


def test_every_assignment_of_a_log_is_counted_once_with_its_outcome() -> None:
    logs = make_logs(5, start=START, days=60, per_node=25)
    tallies = rankings.department_tallies([log.events for log in logs], now=START + dt.timedelta(days=70))
    assigned = sum(1 for log in logs for e in log.events if e.WhichOneof("payload") == "assigned")
    returned = sum(1 for log in logs for e in log.events if e.WhichOneof("payload") == "returned")
    acknowledged = sum(1 for log in logs for e in log.events if e.WhichOneof("payload") == "acknowledged")
    assert sum(t.assignments for t in tallies) == assigned
    assert sum(t.returned for t in tallies) == returned
    assert sum(t.acknowledged for t in tallies) == acknowledged
    closed = sum(1 for log in logs for e in log.events if e.WhichOneof("payload") == "closed")
    assert sum(t.on_time for t in tallies) <= closed <= sum(t.due for t in tallies)


def test_a_late_closing_is_not_on_time_and_satisfaction_goes_to_the_closer() -> None:
    logs = make_logs(9, start=START, days=30, per_node=40)
    for log in logs:
        for a in rankings.assignments_of(log.events):
            if a.closed_on_time is not None:
                assert not (a.returned or a.escalated_away)
            if a.satisfaction:
                assert a.closed_on_time is not None


def test_small_samples_are_unranked_and_ties_share_a_rank() -> None:
    names = ["甲", "乙", "丙", "丁", "戊", "己", "庚"]
    scores = [90.0, 80.0, 80.0, 70.0, 60.0, 50.0, 99.0]
    samples = [10, 10, 10, 10, 10, 10, 2]
    placings = place(names, scores, samples, min_sample=5, list_size=2)
    assert [p.rank for p in placings] == [1, 2, 2, 4, 5, 6, 0]
    assert [p.list for p in placings] == ["red", "red", "red", "", "black", "black", ""]


def test_with_few_ranked_no_one_is_on_both_lists() -> None:
    placings = place(["甲", "乙", "丙"], [90.0, 50.0, 10.0], [9, 9, 9], min_sample=5, list_size=3)
    assert [p.list for p in placings] == ["red", "", "black"]


def test_a_department_that_returns_everything_scores_below_one_that_does_its_work() -> None:
    good = DepartmentTally("司法所", assignments=40, acknowledged=40, returned=1, on_time=36, due=38,
                           satisfaction_sum=180, satisfaction_count=38)  # fmt: skip
    bad = DepartmentTally("某所", assignments=40, acknowledged=20, returned=20, on_time=5, due=18,
                          satisfaction_sum=50, satisfaction_count=18)  # fmt: skip
    assert rankings.department_score(good) > 80 > 40 > rankings.department_score(bad)


def test_a_department_called_by_whistle_counts_its_report_in_time_towards_acknowledgement() -> None:
    from fengqiao.v1 import case_pb2 as pb
    from tests.fengqiao.cases.test_lifecycle import Story, ts

    story = Story()
    story.run("triaged")
    called = [
        pb.Summons(department=d, report_by=ts(story.at + dt.timedelta(minutes=30)))
        for d in ("司法所", "派出所", "信访办")
    ]
    story.step("whistled", pb.Whistled(reason="群体性苗头", summons=called))
    story.step("reported_for_duty", pb.ReportedForDuty(department="司法所"))  # 5 minutes later: in time
    story.at += dt.timedelta(hours=1)
    story.step("reported_for_duty", pb.ReportedForDuty(department="派出所"))  # an hour later: late
    # Half an hour in, before the 报到 deadline: only the call already answered is due.
    early = rankings.department_tallies([story.events[:-1]], now=story.at - dt.timedelta(minutes=50))
    assert {t.department: (t.reported_in_time, t.calls) for t in early} == {"司法所": (1, 1)}
    after_due = {t.department: t for t in rankings.department_tallies([story.events], now=story.at)}
    assert {d: (t.answered, t.asked) for d, t in after_due.items()} == {
        "司法所": (1, 1),
        "派出所": (0, 1),  # reported, but after its 报到 deadline
        "信访办": (0, 1),  # never reported, and the deadline has passed
    }
