"""Deadlines (pure): the clocks of the response classes, and when warnings and 督办 are due.

A clock counts hours, or working days on the county's calendar (``fengqiao/workdays.py``) where the
county sets ``FQ_INTAKE_ROUTINE_WORKING_DAYS`` / ``FQ_INTAKE_REOPEN_WORKING_DAYS``; 应急 always
counts hours. A working-day clock ends at 24:00 of its last working day, and its warning comes
when the given share of its working time has passed.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf.message import Message

from fengqiao.cases import lifecycle
from fengqiao.clock import CHINA_TZ
from fengqiao.divisions import parent_code
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from fengqiao.workdays import WorkCalendar
from services.intake.config import IntakeSettings

MONDAY_TO_FRIDAY = WorkCalendar()
"""A calendar without holidays: what a working-day clock counts on where none is given."""


def _ends(start: dt.datetime, *, hours: float, working_days: int, calendar: WorkCalendar | None) -> dt.datetime:
    if working_days:
        return (calendar or MONDAY_TO_FRIDAY).after_working_days(start, working_days)
    return start + dt.timedelta(hours=hours)


def deadline_for(
    response_class: int,
    start: dt.datetime,
    settings: IntakeSettings,
    *,
    given: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> dt.datetime:
    """The deadline of a clock started at ``start``: 即办 24 h (or the county's working days), 应急
    2 h, set by the center for 攻坚."""
    if response_class == pb.RESPONSE_CLASS_TASK_FORCE:
        if given is None:
            raise InvalidArgument("deadline", "攻坚案件须由中心确定办理时限")
        return given
    if response_class == pb.RESPONSE_CLASS_URGENT:
        return start + dt.timedelta(hours=settings.urgent_hours)
    return _ends(start, hours=settings.routine_hours, working_days=settings.routine_working_days, calendar=calendar)


def intake_deadline(
    response_class: int, now: dt.datetime, settings: IntakeSettings, *, calendar: WorkCalendar | None = None
) -> dt.datetime:
    """The provisional clock at 受理: 应急's for 应急, else 即办's until triage sets the class's own."""
    urgent = response_class == pb.RESPONSE_CLASS_URGENT
    provisional = pb.RESPONSE_CLASS_URGENT if urgent else pb.RESPONSE_CLASS_ROUTINE
    return deadline_for(provisional, now, settings, calendar=calendar)


def reopen_deadline(now: dt.datetime, settings: IntakeSettings, *, calendar: WorkCalendar | None = None) -> dt.datetime:
    """The clock of a case sent back after an unsatisfied 回访 (发回重办)."""
    return _ends(now, hours=settings.reopen_hours, working_days=settings.reopen_working_days, calendar=calendar)


def counts_working_days(case: pb.Case, settings: IntakeSettings) -> bool:
    """Whether the case's warning counts working time: the county counts working days, and the
    case is not 应急."""
    working = settings.routine_working_days > 0 or settings.reopen_working_days > 0
    return working and case.response_class != pb.RESPONSE_CLASS_URGENT


def check_extension_in_time(case: pb.Case, now: dt.datetime) -> None:
    """延期 is applied for before the deadline, never after it (the 12345 practice)."""
    if lifecycle.has_deadline(case) and now >= case.deadline.ToDatetime(tzinfo=dt.UTC):
        due = case.deadline.ToDatetime(tzinfo=dt.UTC).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
        raise IllegalTransition(f"办理时限已于 {due} 届满，不能再申请延期（延期须在时限届满前申请）")


def supervisor_of(node_code: str) -> str:
    """The tier a 督办 goes to: the parent, or the county itself at the top."""
    return parent_code(node_code) or node_code


def warn_time(start: dt.datetime, deadline: dt.datetime, share: float) -> dt.datetime:
    """When the warning is due: ``share`` of the way from ``start`` to ``deadline``."""
    return start + (deadline - start) * share


def due_alarms(case: pb.Case, now: dt.datetime, share: float, *, calendar: WorkCalendar | None = None) -> list[str]:
    """The alarms owed for the case's current deadline at ``now``, in the order to raise them;
    none while it awaits the tier above (the fold refuses them, and the clock watch would ask
    again at every scan). With a ``calendar``, the warning's share is of the working time."""
    if not lifecycle.is_open(case) or case.status == pb.CASE_STATUS_ESCALATING or not lifecycle.has_deadline(case):
        return []
    deadline = case.deadline.ToDatetime(tzinfo=dt.UTC)
    start = case.clock_start.ToDatetime(tzinfo=dt.UTC)
    due = []
    warn_at = calendar.share_of(start, deadline, share) if calendar else warn_time(start, deadline, share)
    if case.warned_for != case.deadline and now >= warn_at:
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


def owed_alarms(
    case: pb.Case, now: dt.datetime, share: float, *, supervisor: str, calendar: WorkCalendar | None = None
) -> list[tuple[str, Message]]:
    """Every alarm event owed for ``case`` at ``now``, as (type, payload) steps in order."""
    steps: list[tuple[str, Message]] = [
        ("deadline_warning", pb.DeadlineWarning(deadline=case.deadline))
        if kind == "deadline_warning"
        else ("supervision", pb.Supervision(deadline=case.deadline, to_node=supervisor))
        for kind in due_alarms(case, now, share, calendar=calendar)
    ]
    return steps + due_department_alarms(case, now)
