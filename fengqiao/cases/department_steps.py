"""Departments at work on a case, as fold steps: 中心吹哨 calls departments, each must 报到 by its
deadline (marked overdue once if not); a 攻坚 task force has a lead department and sub-tasks with
their own deadlines (each marked overdue once), all of which must be done before 办结.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.cases.steps import need
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb


def _after(event: pb.CaseEvent, when: Timestamp, field: str, what: str) -> None:
    if when.ToDatetime() <= event.at.ToDatetime():
        raise InvalidArgument(field, f"{what}必须晚于当前时间")


def whistled(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.whistled
    need(step.reason, "reason", "吹哨事由")
    if not step.summons:
        raise InvalidArgument("summons", "吹哨须至少召集一个部门")
    called = {s.department for s in case.summons}
    for i, summons in enumerate(step.summons):
        need(summons.department, f"summons[{i}].department", "报到部门")
        if summons.department in called:
            raise IllegalTransition(f"{summons.department}已被召集，不重复吹哨")
        called.add(summons.department)
        if not summons.HasField("report_by"):
            raise InvalidArgument(f"summons[{i}].report_by", "须确定报到时限")
        _after(event, summons.report_by, f"summons[{i}].report_by", "报到时限")
        if summons.HasField("reported_at") or summons.overdue:
            raise InvalidArgument(f"summons[{i}]", "吹哨时部门尚未报到")
    case.summons.extend(step.summons)


def _summons(case: pb.Case, department: str) -> pb.Summons:
    for summons in case.summons:
        if summons.department == department:
            return summons
    raise IllegalTransition(f"{department or '该部门'}未被吹哨召集")


def reported_for_duty(case: pb.Case, event: pb.CaseEvent) -> None:
    summons = _summons(case, event.reported_for_duty.department)
    if summons.HasField("reported_at"):
        raise IllegalTransition(f"{summons.department}已报到")
    summons.reported_at.CopyFrom(event.at)


def summons_overdue(case: pb.Case, event: pb.CaseEvent) -> None:
    summons = _summons(case, event.summons_overdue.department)
    if summons.HasField("reported_at") or summons.overdue:
        raise IllegalTransition(f"{summons.department}已报到或已记录超时")
    if event.at.ToDatetime() < summons.report_by.ToDatetime():
        raise IllegalTransition(f"{summons.department}的报到时限未到")
    summons.overdue = True


def task_force_formed(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.task_force_formed
    if case.response_class != pb.RESPONSE_CLASS_TASK_FORCE:
        raise IllegalTransition("只有攻坚案件可以成立攻坚专班")
    if case.lead_department:
        raise IllegalTransition(f"已成立攻坚专班（牵头部门：{case.lead_department}）")
    need(step.lead_department, "lead_department", "牵头部门")
    if not step.subtasks:
        raise InvalidArgument("subtasks", "攻坚专班须至少有一项配合部门的子任务")
    ids: set[str] = set()
    for i, task in enumerate(step.subtasks):
        need(task.id, f"subtasks[{i}].id", "子任务编号")
        if task.id in ids:
            raise InvalidArgument(f"subtasks[{i}].id", f"子任务编号 {task.id} 重复")
        ids.add(task.id)
        need(task.department, f"subtasks[{i}].department", "子任务承办部门")
        need(task.task, f"subtasks[{i}].task", "子任务内容")
        if not task.HasField("deadline"):
            raise InvalidArgument(f"subtasks[{i}].deadline", "子任务须确定完成时限")
        _after(event, task.deadline, f"subtasks[{i}].deadline", "子任务时限")
        if task.deadline.ToDatetime() > case.deadline.ToDatetime():
            raise InvalidArgument(f"subtasks[{i}].deadline", "子任务时限不能晚于案件办理时限")
        if task.HasField("done_at") or task.overdue or task.result:
            raise InvalidArgument(f"subtasks[{i}]", "新建子任务不能已完成")
    case.lead_department = step.lead_department
    case.subtasks.extend(step.subtasks)


def _subtask(case: pb.Case, subtask_id: str) -> pb.SubTask:
    for task in case.subtasks:
        if task.id == subtask_id:
            return task
    raise IllegalTransition(f"攻坚专班没有编号为“{subtask_id}”的子任务")


def subtask_done(case: pb.Case, event: pb.CaseEvent) -> None:
    task = _subtask(case, event.subtask_done.subtask_id)
    if task.HasField("done_at"):
        raise IllegalTransition(f"子任务 {task.id} 已完成")
    need(event.subtask_done.result, "result", "子任务完成情况")
    task.done_at.CopyFrom(event.at)
    task.result = event.subtask_done.result


def subtask_overdue(case: pb.Case, event: pb.CaseEvent) -> None:
    task = _subtask(case, event.subtask_overdue.subtask_id)
    if task.HasField("done_at") or task.overdue:
        raise IllegalTransition(f"子任务 {task.id} 已完成或已记录超时")
    if event.at.ToDatetime() < task.deadline.ToDatetime():
        raise IllegalTransition(f"子任务 {task.id} 的时限未到")
    task.overdue = True
