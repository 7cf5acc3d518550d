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
}
CLOSED_STATUSES = frozenset({pb.CASE_STATUS_CLOSED, pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED})
UNSATISFIED_MAX = 2  # satisfaction 1–2 reopens the case (发回重办)

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
    case.clock_start.CopyFrom(event.at)
    _set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_RECEIVED


def _escalation_refused(case: pb.Case, event: pb.CaseEvent) -> None:
    _need(event.escalation_refused.reason, "reason", "退回上报的理由")
    case.status = case.status_before_escalation
    case.escalation_to = ""
    case.status_before_escalation = pb.CASE_STATUS_UNSPECIFIED


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
    return problems
