"""Deadlines (pure): the clocks of the response classes, and when warnings and 督办 are due."""

from __future__ import annotations

import datetime as dt

from google.protobuf.message import Message

from fengqiao.cases import lifecycle
from fengqiao.divisions import parent_code
from fengqiao.errors import InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from services.intake.config import IntakeSettings


def deadline_for(
    response_class: int, start: dt.datetime, settings: IntakeSettings, *, given: dt.datetime | None = None
) -> dt.datetime:
    """The deadline of a clock started at ``start``: 24 h 即办, 2 h 应急, set by the center for 攻坚."""
    if response_class == pb.RESPONSE_CLASS_TASK_FORCE:
        if given is None:
            raise InvalidArgument("deadline", "攻坚案件须由中心确定办理时限")
        return given
    if response_class == pb.RESPONSE_CLASS_URGENT:
        return start + dt.timedelta(hours=settings.urgent_hours)
    return start + dt.timedelta(hours=settings.routine_hours)


def intake_deadline(response_class: int, now: dt.datetime, settings: IntakeSettings) -> dt.datetime:
    """The provisional clock at 受理: 2 h for 应急, else 24 h until triage sets the class's own."""
    if response_class == pb.RESPONSE_CLASS_URGENT:
        return now + dt.timedelta(hours=settings.urgent_hours)
    return now + dt.timedelta(hours=settings.routine_hours)


def supervisor_of(node_code: str) -> str:
    """The tier a 督办 goes to: the parent, or the county itself at the top."""
    return parent_code(node_code) or node_code


def warn_time(start: dt.datetime, deadline: dt.datetime, share: float) -> dt.datetime:
    """When the warning is due: ``share`` of the way from ``start`` to ``deadline``."""
    return start + (deadline - start) * share


def due_alarms(case: pb.Case, now: dt.datetime, share: float) -> list[str]:
    """The alarms owed for the case's current deadline at ``now``, in the order to raise them;
    none while it awaits the tier above (the fold refuses them, and the clock watch would ask
    again at every scan)."""
    if not lifecycle.is_open(case) or case.status == pb.CASE_STATUS_ESCALATING or not lifecycle.has_deadline(case):
        return []
    deadline = case.deadline.ToDatetime(tzinfo=dt.UTC)
    start = case.clock_start.ToDatetime(tzinfo=dt.UTC)
    due = []
    if case.warned_for != case.deadline and now >= warn_time(start, deadline, share):
        due.append("deadline_warning")
    if case.supervised_for != case.deadline and now >= deadline:
        due.append("supervision")
    return due


def due_department_alarms(case: pb.Case, now: dt.datetime) -> list[tuple[str, Message]]:
    """报到超时 of called departments and 子任务超时 of task-force sub-tasks owed at ``now``."""
    if not lifecycle.is_open(case) or case.status == pb.CASE_STATUS_ESCALATING:
        return []
    owed: list[tuple[str, Message]] = [
        ("summons_overdue", pb.SummonsOverdue(department=s.department))
        for s in case.summons
        if not s.HasField("reported_at") and not s.overdue and now >= s.report_by.ToDatetime(tzinfo=dt.UTC)
    ]
    owed += [
        ("subtask_overdue", pb.SubTaskOverdue(subtask_id=t.id))
        for t in case.subtasks
        if not t.HasField("done_at") and not t.overdue and now >= t.deadline.ToDatetime(tzinfo=dt.UTC)
    ]
    return owed


def owed_alarms(case: pb.Case, now: dt.datetime, share: float, *, supervisor: str) -> list[tuple[str, Message]]:
    """Every alarm event owed for ``case`` at ``now``, as (type, payload) steps in order."""
    steps: list[tuple[str, Message]] = [
        ("deadline_warning", pb.DeadlineWarning(deadline=case.deadline))
        if kind == "deadline_warning"
        else ("supervision", pb.Supervision(deadline=case.deadline, to_node=supervisor))
        for kind in due_alarms(case, now, share)
    ]
    return steps + due_department_alarms(case, now)
