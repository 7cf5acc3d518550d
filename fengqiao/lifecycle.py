"""The case as the fold of its events: the closed loop (闭环) as a pure state machine.

``apply`` takes the current case (or ``None`` before the first event) and one event and
returns the new case, or raises — ``IllegalTransition`` for a step the case's state does not
allow, ``InvalidArgument`` for a malformed slip — and leaves its input untouched. Every node
folds with this one function: the holder before writing, the tiers above when replicating.
Events carry every fact the fold needs (deadlines included), so the fold needs no settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.divisions import parent_code
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2

S = pb.CaseStatus
STATUS_LABELS = {
    pb.CASE_STATUS_RECEIVED: "已受理",
    pb.CASE_STATUS_TRIAGED: "已研判",
    pb.CASE_STATUS_ASSIGNED: "已交办",
    pb.CASE_STATUS_ACKNOWLEDGED: "已签收",
    pb.CASE_STATUS_IN_PROGRESS: "处置中",
    pb.CASE_STATUS_FEEDBACK: "已反馈",
    pb.CASE_STATUS_REVIEWED: "已审核",
    pb.CASE_STATUS_CLOSED: "已办结",
    pb.CASE_STATUS_FOLLOWED_UP: "已回访",
    pb.CASE_STATUS_ARCHIVED: "已归档",
    pb.CASE_STATUS_ESCALATING: "上报中",
    pb.CASE_STATUS_RETURNED: "已退单",
    pb.CASE_STATUS_REOPENED: "发回重办",
}
STEP_LABELS = {
    "received": "受理",
    "triaged": "分类研判",
    "assigned": "交办",
    "acknowledged": "签收",
    "returned": "退单",
    "extension_requested": "延期申请",
    "extension_decided": "延期审批",
    "started": "处置",
    "progress": "处置进展",
    "feedback": "反馈",
    "reviewed": "审核",
    "closed": "办结",
    "follow_up": "回访",
    "reopened": "发回重办",
    "archived": "归档",
    "deadline_warning": "临期预警",
    "supervision": "督办",
    "escalation_requested": "上报",
    "escalation_accepted": "接收上报",
    "escalation_refused": "退回上报",
    "whistled": "中心吹哨",
    "reported_for_duty": "部门报到",
    "summons_overdue": "报到超时",
    "task_force_formed": "成立攻坚专班",
    "subtask_done": "子任务完成",
    "subtask_overdue": "子任务超时",
}
CLOSED_STATUSES = frozenset({pb.CASE_STATUS_CLOSED, pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED})
UNSATISFIED_MAX = 2  # satisfaction 1–2 reopens the case (发回重办)

# While a case is being handled at its holder: where departments can be called and tasked.
_HANDLING = frozenset(
    {
        S.CASE_STATUS_TRIAGED,
        S.CASE_STATUS_RETURNED,
        S.CASE_STATUS_REOPENED,
        S.CASE_STATUS_ASSIGNED,
        S.CASE_STATUS_ACKNOWLEDGED,
        S.CASE_STATUS_IN_PROGRESS,
    }
)
# Where each step may be taken from.
_FROM: dict[str, frozenset[int]] = {
    "triaged": frozenset({S.CASE_STATUS_RECEIVED, S.CASE_STATUS_RETURNED, S.CASE_STATUS_REOPENED}),
    "assigned": frozenset({S.CASE_STATUS_TRIAGED, S.CASE_STATUS_RETURNED, S.CASE_STATUS_REOPENED}),
    "acknowledged": frozenset({S.CASE_STATUS_ASSIGNED}),
    "returned": frozenset({S.CASE_STATUS_ASSIGNED, S.CASE_STATUS_ACKNOWLEDGED}),
    "extension_requested": frozenset({S.CASE_STATUS_ASSIGNED, S.CASE_STATUS_ACKNOWLEDGED, S.CASE_STATUS_IN_PROGRESS}),
    "extension_decided": frozenset({S.CASE_STATUS_ASSIGNED, S.CASE_STATUS_ACKNOWLEDGED, S.CASE_STATUS_IN_PROGRESS}),
    "started": frozenset({S.CASE_STATUS_ACKNOWLEDGED}),
    "progress": frozenset({S.CASE_STATUS_IN_PROGRESS}),
    "feedback": frozenset({S.CASE_STATUS_IN_PROGRESS}),
    "reviewed": frozenset({S.CASE_STATUS_FEEDBACK}),
    "closed": frozenset({S.CASE_STATUS_REVIEWED}),
    "follow_up": frozenset({S.CASE_STATUS_CLOSED}),
    "reopened": frozenset({S.CASE_STATUS_FOLLOWED_UP}),
    "archived": frozenset({S.CASE_STATUS_FOLLOWED_UP}),
    "escalation_requested": frozenset(
        {
            S.CASE_STATUS_RECEIVED,
            S.CASE_STATUS_TRIAGED,
            S.CASE_STATUS_RETURNED,
            S.CASE_STATUS_REOPENED,
            S.CASE_STATUS_ASSIGNED,
            S.CASE_STATUS_ACKNOWLEDGED,
            S.CASE_STATUS_IN_PROGRESS,
        }
    ),
    "escalation_accepted": frozenset({S.CASE_STATUS_ESCALATING}),
    "escalation_refused": frozenset({S.CASE_STATUS_ESCALATING}),
    "whistled": _HANDLING,
    "reported_for_duty": _HANDLING | {S.CASE_STATUS_FEEDBACK, S.CASE_STATUS_REVIEWED},
    "summons_overdue": _HANDLING | {S.CASE_STATUS_FEEDBACK, S.CASE_STATUS_REVIEWED},
    "task_force_formed": _HANDLING,
    "subtask_done": _HANDLING | {S.CASE_STATUS_FEEDBACK, S.CASE_STATUS_REVIEWED},
    "subtask_overdue": _HANDLING | {S.CASE_STATUS_FEEDBACK, S.CASE_STATUS_REVIEWED},
}
# Written by the center an escalation is addressed to, not by the holder.
_BY_RECEIVER = frozenset({"escalation_accepted", "escalation_refused"})


def event_type(event: pb.CaseEvent) -> str:
    """The event's type: the name of its payload (received, triaged, ...)."""
    kind = event.WhichOneof("payload")
    if kind is None:
        raise InvalidArgument("payload", "事件缺少内容，无法处理")
    return kind


def event_time(event: pb.CaseEvent) -> dt.datetime:
    return event.at.ToDatetime(tzinfo=dt.UTC)


def is_open(case: pb.Case) -> bool:
    return case.status not in CLOSED_STATUSES


def has_deadline(case: pb.Case) -> bool:
    return case.HasField("deadline")


def alarms_pending(case: pb.Case) -> bool:
    """Whether the clock watch may still owe this case an alarm: 督办 of its deadline, or a
    called department or a sub-task whose own deadline has not yet been marked overdue."""
    if not is_open(case):
        return False
    if has_deadline(case) and case.supervised_for != case.deadline:
        return True
    return any(not s.HasField("reported_at") and not s.overdue for s in case.summons) or any(
        not t.HasField("done_at") and not t.overdue for t in case.subtasks
    )


def _need(text: str, field: str, what: str) -> None:
    if not text.strip():
        raise InvalidArgument(field, f"{what}不能为空")


def _received(case: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
    if case is not None:
        raise IllegalTransition(f"案件 {case.receipt_no} 已受理，不能重复受理")
    new = pb.Case()
    new.CopyFrom(event.received.case)
    new.id = event.case_id
    new.holder_node = event.node
    new.status = pb.CASE_STATUS_RECEIVED
    new.received_at.CopyFrom(event.at)
    return new


def _set_deadline(case: pb.Case, deadline: Timestamp) -> None:
    """Move the running clock's end; warnings and 督办 are owed afresh for a new deadline."""
    if case.deadline != deadline:
        case.deadline.CopyFrom(deadline)
        case.ClearField("warned_for")
        case.ClearField("supervised_for")


def _triaged(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.triaged
    _need(step.category, "category", "案件类别")
    if step.response_class == pb.RESPONSE_CLASS_UNSPECIFIED:
        raise InvalidArgument("response_class", "请选择响应级别（即办、应急或攻坚）")
    if not step.HasField("deadline"):
        raise InvalidArgument("deadline", "分类研判须确定办理时限")
    if step.deadline.ToDatetime() <= case.clock_start.ToDatetime():
        raise InvalidArgument("deadline", "办理时限必须晚于计时起点")
    case.category = step.category
    case.response_class = step.response_class
    _set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_TRIAGED


def _assigned(case: pb.Case, event: pb.CaseEvent) -> None:
    slip = event.assigned.slip
    _need(slip.department, "slip.department", "承办部门")
    _need(slip.requirement, "slip.requirement", "办理要求")
    if (
        slip.HasField("deadline")
        and not event.at.ToDatetime() < slip.deadline.ToDatetime() <= case.deadline.ToDatetime()
    ):
        raise InvalidArgument("slip.deadline", "交办时限须晚于交办时间，且不晚于案件办理时限（延长请走延期审批）")
    case.assignment.CopyFrom(slip)
    if not slip.HasField("deadline"):
        case.assignment.deadline.CopyFrom(case.deadline)
    case.acknowledged = False
    case.ClearField("feedback")
    case.review_approved = False
    case.status = pb.CASE_STATUS_ASSIGNED


def _acknowledged(case: pb.Case, event: pb.CaseEvent) -> None:
    case.acknowledged = True
    case.status = pb.CASE_STATUS_ACKNOWLEDGED


def _returned(case: pb.Case, event: pb.CaseEvent) -> None:
    _need(event.returned.reason, "reason", "退单理由")
    case.returns += 1
    case.acknowledged = False
    case.ClearField("pending_extension")
    case.status = pb.CASE_STATUS_RETURNED


def _extension_requested(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.extension_requested
    if case.HasField("pending_extension"):
        raise IllegalTransition("已有延期申请待审批，不能重复申请")
    _need(step.reason, "reason", "延期理由")
    if not step.HasField("new_deadline") or step.new_deadline.ToDatetime() <= case.deadline.ToDatetime():
        raise InvalidArgument("new_deadline", "申请的新时限必须晚于当前时限")
    case.pending_extension.CopyFrom(step)


def _extension_decided(case: pb.Case, event: pb.CaseEvent) -> None:
    if not case.HasField("pending_extension"):
        raise IllegalTransition("没有待审批的延期申请")
    step = event.extension_decided
    if not step.granted:
        _need(step.reason, "reason", "不予延期的理由")
    else:
        _set_deadline(case, case.pending_extension.new_deadline)
        case.assignment.deadline.CopyFrom(case.pending_extension.new_deadline)
    case.ClearField("pending_extension")


def _started(case: pb.Case, event: pb.CaseEvent) -> None:
    case.status = pb.CASE_STATUS_IN_PROGRESS


def _progress(case: pb.Case, event: pb.CaseEvent) -> None:
    _need(event.progress.note, "note", "进展情况")


def _feedback(case: pb.Case, event: pb.CaseEvent) -> None:
    slip = event.feedback.slip
    _need(slip.result, "slip.result", "处置结果")
    case.feedback.CopyFrom(slip)
    case.ClearField("pending_extension")
    case.status = pb.CASE_STATUS_FEEDBACK


def _reviewed(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.reviewed
    if step.approved:
        case.review_approved = True
        case.status = pb.CASE_STATUS_REVIEWED
        return
    _need(step.opinion, "opinion", "审核不通过的意见")
    case.reworks += 1
    case.ClearField("feedback")
    case.status = pb.CASE_STATUS_IN_PROGRESS


def _closed(case: pb.Case, event: pb.CaseEvent) -> None:
    if not case.HasField("feedback") or not case.review_approved:
        raise IllegalTransition("没有经审核通过的反馈单，不能办结")
    undone = [f"{t.department}（{t.task}）" for t in case.subtasks if not t.HasField("done_at")]
    if undone:
        raise IllegalTransition(f"攻坚专班尚有子任务未完成，不能办结：{'、'.join(undone)}")
    step = event.closed
    if step.resolved_tier == 0:
        raise InvalidArgument("resolved_tier", "办结须记录化解层级")
    case.mediation_level = step.mediation_level or case.feedback.mediation_level
    _need(case.mediation_level, "mediation_level", "化解方式（调解层级）")
    case.resolved_tier = step.resolved_tier
    case.closed_at.CopyFrom(event.at)
    case.status = pb.CASE_STATUS_CLOSED


def _follow_up(case: pb.Case, event: pb.CaseEvent) -> None:
    slip = event.follow_up.slip
    if not 1 <= slip.satisfaction <= 5:
        raise InvalidArgument("slip.satisfaction", "满意度须为 1–5")
    case.evaluation.CopyFrom(slip)
    case.status = pb.CASE_STATUS_FOLLOWED_UP


def _reopened(case: pb.Case, event: pb.CaseEvent) -> None:
    if case.evaluation.satisfaction > UNSATISFIED_MAX:
        raise IllegalTransition("回访满意，不能发回重办")
    step = event.reopened
    _need(step.reason, "reason", "发回重办理由")
    if not step.HasField("deadline") or step.deadline.ToDatetime() <= event.at.ToDatetime():
        raise InvalidArgument("deadline", "发回重办须确定晚于当前时间的新办理时限")
    case.reopens += 1
    case.review_approved = False
    case.acknowledged = False
    case.ClearField("feedback")
    case.ClearField("closed_at")
    case.resolved_tier = common_pb2.TIER_UNSPECIFIED
    case.mediation_level = ""
    case.clock_start.CopyFrom(event.at)
    _set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_REOPENED


def _archived(case: pb.Case, event: pb.CaseEvent) -> None:
    if not case.HasField("evaluation"):
        raise IllegalTransition("未回访的案件不能归档（百分百回访）")
    if case.evaluation.satisfaction <= UNSATISFIED_MAX:
        raise IllegalTransition("回访不满意的案件须发回重办，不能归档")
    case.status = pb.CASE_STATUS_ARCHIVED


def _alarm(case: pb.Case, deadline: Timestamp, done: str, what: str) -> None:
    if case.status == pb.CASE_STATUS_ESCALATING:
        raise IllegalTransition(f"上报待上级接收期间，不能{what}")
    if not is_open(case) or not has_deadline(case):
        raise IllegalTransition(f"案件没有进行中的办理时限，不能{what}")
    if deadline != case.deadline:
        raise IllegalTransition(f"{what}所针对的时限不是案件当前时限")
    if case.HasField(done) and getattr(case, done) == case.deadline:  # type: ignore[arg-type]
        raise IllegalTransition(f"该时限已{what}过，不重复{what}")
    getattr(case, done).CopyFrom(case.deadline)


def _deadline_warning(case: pb.Case, event: pb.CaseEvent) -> None:
    _alarm(case, event.deadline_warning.deadline, "warned_for", "预警")


def _supervision(case: pb.Case, event: pb.CaseEvent) -> None:
    _need(event.supervision.to_node, "to_node", "督办单位")
    _alarm(case, event.supervision.deadline, "supervised_for", "督办")
    case.supervisions += 1


def _escalation_requested(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.escalation_requested
    _need(step.reason, "reason", "上报理由")
    above = parent_code(case.holder_node)
    if above is None:
        raise IllegalTransition("县级中心没有上一级，不能上报")
    if step.to_node != above:
        raise IllegalTransition(f"只能逐级上报到上一级中心（{above}）")
    case.escalation_to = step.to_node
    case.status_before_escalation = case.status
    case.decided_rule = step.rule_id or "operator"
    case.decided_reason = step.reason
    case.ClearField("pending_extension")
    case.status = pb.CASE_STATUS_ESCALATING


def _escalation_accepted(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.escalation_accepted
    if not step.HasField("deadline") or step.deadline.ToDatetime() <= event.at.ToDatetime():
        raise InvalidArgument("deadline", "接收上报须确定晚于当前时间的办理时限")
    case.holder_node = event.node
    case.escalation_to = ""
    case.status_before_escalation = pb.CASE_STATUS_UNSPECIFIED
    case.escalations += 1
    case.ClearField("assignment")
    case.acknowledged = False
    case.ClearField("feedback")
    case.review_approved = False
    case.ClearField("summons")  # the tier below's departments; the new holder calls its own
    case.lead_department = ""
    case.ClearField("subtasks")
    case.clock_start.CopyFrom(event.at)
    _set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_RECEIVED


def _escalation_refused(case: pb.Case, event: pb.CaseEvent) -> None:
    _need(event.escalation_refused.reason, "reason", "退回上报的理由")
    case.status = case.status_before_escalation
    case.escalation_to = ""
    case.status_before_escalation = pb.CASE_STATUS_UNSPECIFIED


def _after(event: pb.CaseEvent, when: Timestamp, field: str, what: str) -> None:
    if when.ToDatetime() <= event.at.ToDatetime():
        raise InvalidArgument(field, f"{what}必须晚于当前时间")


def _whistled(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.whistled
    _need(step.reason, "reason", "吹哨事由")
    if not step.summons:
        raise InvalidArgument("summons", "吹哨须至少召集一个部门")
    called = {s.department for s in case.summons}
    for i, summons in enumerate(step.summons):
        _need(summons.department, f"summons[{i}].department", "报到部门")
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


def _reported_for_duty(case: pb.Case, event: pb.CaseEvent) -> None:
    summons = _summons(case, event.reported_for_duty.department)
    if summons.HasField("reported_at"):
        raise IllegalTransition(f"{summons.department}已报到")
    summons.reported_at.CopyFrom(event.at)


def _summons_overdue(case: pb.Case, event: pb.CaseEvent) -> None:
    summons = _summons(case, event.summons_overdue.department)
    if summons.HasField("reported_at") or summons.overdue:
        raise IllegalTransition(f"{summons.department}已报到或已记录超时")
    if event.at.ToDatetime() < summons.report_by.ToDatetime():
        raise IllegalTransition(f"{summons.department}的报到时限未到")
    summons.overdue = True


def _task_force_formed(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.task_force_formed
    if case.response_class != pb.RESPONSE_CLASS_TASK_FORCE:
        raise IllegalTransition("只有攻坚案件可以成立攻坚专班")
    if case.lead_department:
        raise IllegalTransition(f"已成立攻坚专班（牵头部门：{case.lead_department}）")
    _need(step.lead_department, "lead_department", "牵头部门")
    if not step.subtasks:
        raise InvalidArgument("subtasks", "攻坚专班须至少有一项配合部门的子任务")
    ids: set[str] = set()
    for i, task in enumerate(step.subtasks):
        _need(task.id, f"subtasks[{i}].id", "子任务编号")
        if task.id in ids:
            raise InvalidArgument(f"subtasks[{i}].id", f"子任务编号 {task.id} 重复")
        ids.add(task.id)
        _need(task.department, f"subtasks[{i}].department", "子任务承办部门")
        _need(task.task, f"subtasks[{i}].task", "子任务内容")
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


def _subtask_done(case: pb.Case, event: pb.CaseEvent) -> None:
    task = _subtask(case, event.subtask_done.subtask_id)
    if task.HasField("done_at"):
        raise IllegalTransition(f"子任务 {task.id} 已完成")
    _need(event.subtask_done.result, "result", "子任务完成情况")
    task.done_at.CopyFrom(event.at)
    task.result = event.subtask_done.result


def _subtask_overdue(case: pb.Case, event: pb.CaseEvent) -> None:
    task = _subtask(case, event.subtask_overdue.subtask_id)
    if task.HasField("done_at") or task.overdue:
        raise IllegalTransition(f"子任务 {task.id} 已完成或已记录超时")
    if event.at.ToDatetime() < task.deadline.ToDatetime():
        raise IllegalTransition(f"子任务 {task.id} 的时限未到")
    task.overdue = True


_STEPS: dict[str, Callable[[pb.Case, pb.CaseEvent], None]] = {
    "triaged": _triaged,
    "assigned": _assigned,
    "acknowledged": _acknowledged,
    "returned": _returned,
    "extension_requested": _extension_requested,
    "extension_decided": _extension_decided,
    "started": _started,
    "progress": _progress,
    "feedback": _feedback,
    "reviewed": _reviewed,
    "closed": _closed,
    "follow_up": _follow_up,
    "reopened": _reopened,
    "archived": _archived,
    "deadline_warning": _deadline_warning,
    "supervision": _supervision,
    "escalation_requested": _escalation_requested,
    "escalation_accepted": _escalation_accepted,
    "escalation_refused": _escalation_refused,
    "whistled": _whistled,
    "reported_for_duty": _reported_for_duty,
    "summons_overdue": _summons_overdue,
    "task_force_formed": _task_force_formed,
    "subtask_done": _subtask_done,
    "subtask_overdue": _subtask_overdue,
}


def apply(case: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
    """The case after ``event``; refuses events out of sequence or not allowed now."""
    expected = 1 if case is None else case.version + 1
    if event.seq != expected:
        raise IllegalTransition(f"事件序号 {event.seq} 不连续（应为 {expected}）")
    kind = event_type(event)
    if kind == "received":
        new = _received(case, event)
    else:
        if case is None:
            raise IllegalTransition("案件尚未受理")
        if event.case_id != case.id:
            raise IllegalTransition("事件不属于该案件")
        step = _STEPS.get(kind)
        if step is None:
            raise IllegalTransition(f"未知的事件类型：{kind}")
        writer = case.escalation_to if kind in _BY_RECEIVER else case.holder_node
        if event.node != writer:
            raise IllegalTransition(
                f"节点 {event.node} 不能{STEP_LABELS.get(kind, kind)}：案件由 {case.holder_node} 承办"
                + (f"，上报给 {case.escalation_to}" if case.escalation_to else "")
            )
        allowed = _FROM.get(kind)
        if allowed is not None and case.status not in allowed:
            raise IllegalTransition(
                f"案件当前状态为“{STATUS_LABELS.get(case.status, case.status)}”，不能{STEP_LABELS.get(kind, kind)}"
            )
        new = pb.Case()
        new.CopyFrom(case)
        step(new, event)
    new.version = event.seq
    new.updated_at.CopyFrom(event.at)
    return new


def fold(events: Iterable[pb.CaseEvent]) -> pb.Case | None:
    """The case from its whole log, in sequence order."""
    case: pb.Case | None = None
    for event in sorted(events, key=lambda e: e.seq):
        case = apply(case, event)
    return case


def invariant_violations(case: pb.Case) -> list[str]:
    """What is wrong with a case, if anything (used by tests and the soak's checks)."""
    problems = []
    if case.status in CLOSED_STATUSES and not (case.HasField("feedback") and case.review_approved):
        problems.append("closed without an approved feedback slip")
    if case.status in CLOSED_STATUSES and (case.resolved_tier == 0 or not case.mediation_level):
        problems.append("closed without resolved tier or mediation level")
    if case.status == pb.CASE_STATUS_ARCHIVED and case.evaluation.satisfaction <= UNSATISFIED_MAX:
        problems.append("archived without a satisfied follow-up")
    if case.status == pb.CASE_STATUS_REVIEWED and not case.review_approved:
        problems.append("reviewed but not approved")
    if case.status in (pb.CASE_STATUS_FEEDBACK, pb.CASE_STATUS_REVIEWED) and not case.HasField("feedback"):
        problems.append("feedback status without a feedback slip")
    if case.HasField("pending_extension") and case.status not in _FROM["extension_decided"]:
        problems.append("pending extension outside handling")
    if case.version < 1 or not case.id or not case.holder_node:
        problems.append("missing identity or version")
    if (case.status == pb.CASE_STATUS_ESCALATING) != bool(case.escalation_to):
        problems.append("escalating without a receiver, or a receiver without escalating")
    if case.escalation_to and case.escalation_to == case.holder_node:
        problems.append("escalated to its own holder")
    if case.status in CLOSED_STATUSES and any(not t.HasField("done_at") for t in case.subtasks):
        problems.append("closed with a task-force sub-task not done")
    return problems
