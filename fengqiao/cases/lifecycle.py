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

from fengqiao import writers
from fengqiao.cases import department_steps as deptsteps
from fengqiao.cases import steps as casesteps
from fengqiao.cases.steps import CLOSED_STATUSES, UNSATISFIED_MAX, has_deadline, is_open
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb

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


def event_type(event: pb.CaseEvent) -> str:
    """The event's type: the name of its payload (received, triaged, ...)."""
    kind = event.WhichOneof("payload")
    if kind is None:
        raise InvalidArgument("payload", "事件缺少内容，无法处理")
    return kind


def event_time(event: pb.CaseEvent) -> dt.datetime:
    return event.at.ToDatetime(tzinfo=dt.UTC)


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


_STEPS: dict[str, Callable[[pb.Case, pb.CaseEvent], None]] = {
    "triaged": casesteps.triaged,
    "assigned": casesteps.assigned,
    "acknowledged": casesteps.acknowledged,
    "returned": casesteps.returned,
    "extension_requested": casesteps.extension_requested,
    "extension_decided": casesteps.extension_decided,
    "started": casesteps.started,
    "progress": casesteps.progress,
    "feedback": casesteps.feedback,
    "reviewed": casesteps.reviewed,
    "closed": casesteps.closed,
    "follow_up": casesteps.follow_up,
    "reopened": casesteps.reopened,
    "archived": casesteps.archived,
    "deadline_warning": casesteps.deadline_warning,
    "supervision": casesteps.supervision,
    "escalation_requested": casesteps.escalation_requested,
    "escalation_accepted": casesteps.escalation_accepted,
    "escalation_refused": casesteps.escalation_refused,
    "whistled": deptsteps.whistled,
    "reported_for_duty": deptsteps.reported_for_duty,
    "summons_overdue": deptsteps.summons_overdue,
    "task_force_formed": deptsteps.task_force_formed,
    "subtask_done": deptsteps.subtask_done,
    "subtask_overdue": deptsteps.subtask_overdue,
}


def apply(case: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
    """The case after ``event``; refuses events out of sequence or not allowed now."""
    expected = 1 if case is None else case.version + 1
    if event.seq != expected:
        raise IllegalTransition(f"事件序号 {event.seq} 不连续（应为 {expected}）")
    kind = event_type(event)
    if kind == "received":
        new = casesteps.received(case, event)
    else:
        if case is None:
            raise IllegalTransition("案件尚未受理")
        if event.case_id != case.id:
            raise IllegalTransition("事件不属于该案件")
        step = _STEPS.get(kind)
        if step is None:
            raise IllegalTransition(f"未知的事件类型：{kind}")
        writer = writers.writer_of("case", kind)  # the holder, or the center an escalation is addressed to
        if writer is None or event.node not in writers.case_owners(case).get(writer, ()):
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
