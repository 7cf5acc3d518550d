"""吹哨报到 and 攻坚专班 in the fold: who is called, who reports, sub-tasks gate 办结, overdue once."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.message import Message
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fengqiao.cases.lifecycle import alarms_pending, apply, fold, invariant_violations
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from tests.fengqiao.cases.test_lifecycle import TO_IN_PROGRESS, Story, feedback_slip, ts, utc, valid_payload


def summons(department: str, minutes: int, story: Story) -> pb.Summons:
    return pb.Summons(
        department=department, presence="resident", report_by=ts(story.at + dt.timedelta(minutes=minutes))
    )


def task_force_story() -> Story:
    """A 攻坚 case, triaged with a deadline three days out, assigned to the lead department."""
    story = Story(response_class=pb.RESPONSE_CLASS_TASK_FORCE)
    story.step(
        "triaged",
        pb.Triaged(
            category="征地拆迁",
            response_class=pb.RESPONSE_CLASS_TASK_FORCE,
            deadline=ts(story.at + dt.timedelta(days=3)),
        ),
    )
    return story


def subtask(task_id: str, department: str, hours: float, story: Story) -> pb.SubTask:
    return pb.SubTask(
        id=task_id,
        department=department,
        task=f"{department}配合化解",
        deadline=ts(story.at + dt.timedelta(hours=hours)),
    )


def test_whistle_calls_departments_who_report_and_a_second_call_of_the_same_department_is_refused() -> None:
    story = Story()
    story.run("triaged")
    case = story.step(
        "whistled",
        pb.Whistled(reason="群体性苗头", summons=[summons("司法所", 30, story), summons("派出所", 60, story)]),
    )
    assert [s.department for s in case.summons] == ["司法所", "派出所"]
    assert alarms_pending(case)
    case = story.step("reported_for_duty", pb.ReportedForDuty(department="司法所"))
    assert case.summons[0].HasField("reported_at") and not case.summons[1].HasField("reported_at")
    story.refuse("reported_for_duty", pb.ReportedForDuty(department="司法所"))
    story.refuse("reported_for_duty", pb.ReportedForDuty(department="市场监管所"))
    story.refuse("whistled", pb.Whistled(reason="再次吹哨", summons=[summons("派出所", 30, story)]))
    story.refuse("whistled", pb.Whistled(reason="", summons=[summons("妇联", 30, story)]), InvalidArgument)
    story.refuse("whistled", pb.Whistled(reason="已过时限", summons=[summons("妇联", -1, story)]), InvalidArgument)


def test_a_department_that_does_not_report_in_time_is_marked_overdue_once_and_not_before() -> None:
    story = Story()
    story.run("triaged")
    story.step("whistled", pb.Whistled(reason="应急处置", summons=[summons("派出所", 30, story)]))
    early = story.next_event("summons_overdue", pb.SummonsOverdue(department="派出所"))
    assert utc(early.at) < utc(story.case.summons[0].report_by)
    story.refuse("summons_overdue", pb.SummonsOverdue(department="派出所"))  # 5 minutes in: not yet due
    story.at += dt.timedelta(hours=1)
    story.step("summons_overdue", pb.SummonsOverdue(department="派出所"))
    assert story.case.summons[0].overdue
    story.refuse("summons_overdue", pb.SummonsOverdue(department="派出所"))  # exactly once
    case = story.step("reported_for_duty", pb.ReportedForDuty(department="派出所"))  # late, but recorded
    assert case.summons[0].overdue and case.summons[0].HasField("reported_at")


def test_only_a_task_force_case_forms_a_task_force_and_it_needs_subtasks_within_the_case_deadline() -> None:
    routine = Story()
    routine.run("triaged")
    error = routine.refuse(
        "task_force_formed",
        pb.TaskForceFormed(lead_department="司法所", subtasks=[subtask("T1", "派出所", 5, routine)]),
    )
    assert "攻坚" in str(error)

    story = task_force_story()
    story.refuse("task_force_formed", pb.TaskForceFormed(lead_department="自然资源所"), InvalidArgument)
    story.refuse(
        "task_force_formed",
        pb.TaskForceFormed(lead_department="自然资源所", subtasks=[subtask("T1", "派出所", 24 * 4, story)]),
        InvalidArgument,
    )
    story.refuse(
        "task_force_formed",
        pb.TaskForceFormed(
            lead_department="自然资源所",
            subtasks=[subtask("T1", "派出所", 5, story), subtask("T1", "信访办", 5, story)],
        ),
        InvalidArgument,
    )
    case = story.step(
        "task_force_formed",
        pb.TaskForceFormed(lead_department="自然资源所", subtasks=[subtask("T1", "派出所", 24, story)]),
    )
    assert case.lead_department == "自然资源所" and len(case.subtasks) == 1
    story.refuse(
        "task_force_formed", pb.TaskForceFormed(lead_department="司法所", subtasks=[subtask("T2", "派出所", 5, story)])
    )


def test_a_task_force_case_closes_only_when_every_subtask_is_done() -> None:
    story = task_force_story()
    story.step(
        "task_force_formed",
        pb.TaskForceFormed(
            lead_department="自然资源所",
            subtasks=[subtask("T1", "派出所", 24, story), subtask("T2", "信访办", 48, story)],
        ),
    )
    story.run(*TO_IN_PROGRESS[1:], "feedback", "reviewed")
    error = story.refuse("closed", valid_payload("closed", story.case))
    assert "信访办" in str(error) and "派出所" in str(error)
    story.step("subtask_done", pb.SubTaskDone(subtask_id="T1", result="维持现场秩序"))
    story.refuse("subtask_done", pb.SubTaskDone(subtask_id="T1", result="again"))
    story.refuse("subtask_done", pb.SubTaskDone(subtask_id="T9", result="未知"))
    story.refuse("subtask_done", pb.SubTaskDone(subtask_id="T2", result=" "), InvalidArgument)
    error = story.refuse("closed", valid_payload("closed", story.case))
    assert "信访办" in str(error) and "派出所" not in str(error)
    story.step("subtask_done", pb.SubTaskDone(subtask_id="T2", result="接待群众代表"))
    case = story.step("closed", valid_payload("closed", story.case))
    assert case.status == pb.CASE_STATUS_CLOSED
    assert invariant_violations(case) == []
    assert not alarms_pending(case)


def test_a_subtask_past_its_own_deadline_is_marked_overdue_once() -> None:
    story = task_force_story()
    story.step(
        "task_force_formed",
        pb.TaskForceFormed(lead_department="自然资源所", subtasks=[subtask("T1", "派出所", 2, story)]),
    )
    story.refuse("subtask_overdue", pb.SubTaskOverdue(subtask_id="T1"))
    story.at += dt.timedelta(hours=3)
    case = story.step("subtask_overdue", pb.SubTaskOverdue(subtask_id="T1"))
    assert case.subtasks[0].overdue
    story.refuse("subtask_overdue", pb.SubTaskOverdue(subtask_id="T1"))


def test_an_accepted_escalation_leaves_the_lower_tiers_departments_behind() -> None:
    story = Story()
    story.run("triaged")
    story.step("whistled", pb.Whistled(reason="调处", summons=[summons("村调委会", 30, story)]))
    story.step("escalation_requested", pb.EscalationRequested(to_node="371702101", reason="跨村纠纷", rule_id="x"))
    accepted = story.next_event(
        "escalation_accepted", pb.EscalationAccepted(deadline=ts(story.at + dt.timedelta(days=1)))
    )
    accepted.node = "371702101"
    case = apply(story.case, accepted)
    assert case.holder_node == "371702101" and not case.summons


@pytest.mark.parametrize("kind", ["whistled", "task_force_formed"])
def test_departments_cannot_be_called_to_a_closed_case(kind: str) -> None:
    story = Story(response_class=pb.RESPONSE_CLASS_TASK_FORCE)
    story.run("triaged", "assigned", "acknowledged", "started")
    story.step("feedback", feedback_slip())
    story.run("reviewed", "closed")
    payload = (
        pb.Whistled(reason="x", summons=[summons("司法所", 30, story)])
        if kind == "whistled"
        else pb.TaskForceFormed(lead_department="司法所", subtasks=[subtask("T1", "派出所", 1, story)])
    )
    story.refuse(kind, payload, IllegalTransition)


DEPARTMENTS = ("司法所", "派出所", "信访办")
TASK_IDS = ("T1", "T2", "T9")
DISPATCH_STEP = st.tuples(
    st.sampled_from(
        [
            "whistled",
            "reported_for_duty",
            "summons_overdue",
            "task_force_formed",
            "subtask_done",
            "subtask_overdue",
            "closed",
        ]
    ),
    st.sampled_from(DEPARTMENTS),
    st.sampled_from(TASK_IDS),
    st.integers(min_value=1, max_value=180),  # minutes since the previous step
)


def _dispatch_payload(kind: str, department: str, task_id: str, case: pb.Case, at: dt.datetime) -> Message:
    if kind == "whistled":
        return pb.Whistled(
            reason="吹哨", summons=[pb.Summons(department=department, report_by=ts(at + dt.timedelta(minutes=30)))]
        )
    if kind == "reported_for_duty":
        return pb.ReportedForDuty(department=department)
    if kind == "summons_overdue":
        return pb.SummonsOverdue(department=department)
    if kind == "task_force_formed":
        tasks = [
            pb.SubTask(id=tid, department=dep, task="配合", deadline=ts(at + dt.timedelta(hours=hours)))
            for tid, dep, hours in (("T1", "派出所", 2), ("T2", "信访办", 6))
        ]
        return pb.TaskForceFormed(lead_department="司法所", subtasks=tasks)
    if kind == "subtask_done":
        return pb.SubTaskDone(subtask_id=task_id, result="完成")
    if kind == "subtask_overdue":
        return pb.SubTaskOverdue(subtask_id=task_id)
    return valid_payload(kind, case)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(DISPATCH_STEP, max_size=25))
def test_random_dispatch_steps_keep_the_case_consistent_and_mark_each_lateness_once(
    steps: list[tuple[str, str, str, int]],
) -> None:
    story = task_force_story()
    story.run("assigned", "acknowledged", "started")
    accepted = list(story.events)
    case, at = story.case, story.at
    for kind, department, task_id, minutes in steps:
        at += dt.timedelta(minutes=minutes)
        built = pb.CaseEvent(
            id=f"ev-{case.version + 1}", case_id=case.id, seq=case.version + 1, node=case.holder_node, actor="值班员"
        )
        built.at.FromDatetime(at)
        getattr(built, kind).CopyFrom(_dispatch_payload(kind, department, task_id, case, at))
        before = pb.Case()
        before.CopyFrom(case)
        try:
            new = apply(case, built)
        except (IllegalTransition, InvalidArgument):
            assert case == before  # refused: nothing changed
            continue
        if kind == "closed":
            assert all(t.HasField("done_at") for t in before.subtasks)
        if kind == "summons_overdue":
            (summons,) = [s for s in before.summons if s.department == department]
            assert not summons.overdue and not summons.HasField("reported_at") and at >= utc(summons.report_by)
        if kind == "subtask_overdue":
            (task,) = [t for t in before.subtasks if t.id == task_id]
            assert not task.overdue and not task.HasField("done_at") and at >= utc(task.deadline)
        case = new
        accepted.append(built)
        assert invariant_violations(case) == []
        assert fold(accepted) == case
    kinds = [e.WhichOneof("payload") for e in accepted]
    late = [e.summons_overdue.department for e in accepted if e.HasField("summons_overdue")]
    assert len(late) == len(set(late))  # each department marked late at most once
    late_tasks = [e.subtask_overdue.subtask_id for e in accepted if e.HasField("subtask_overdue")]
    assert len(late_tasks) == len(set(late_tasks))
    event(f"closed={kinds.count('closed')}")
    event(f"whistles={kinds.count('whistled')}, task force={kinds.count('task_force_formed')}")
    event(f"late departments={len(late)}, late sub-tasks={len(late_tasks)}")
