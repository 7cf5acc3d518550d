"""The steps of the closed loop (闭环) at one tier and of 上报 between tiers, as fold steps: each
takes a copy of the case and the event and changes the copy in place, or raises
``IllegalTransition`` / ``InvalidArgument``. ``fengqiao.lifecycle`` decides which step runs,
checks who writes it and from which status; these check the step's own content.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.divisions import parent_code
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2

CLOSED_STATUSES = frozenset({pb.CASE_STATUS_CLOSED, pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED})
UNSATISFIED_MAX = 2  # satisfaction 1–2 reopens the case (发回重办)


def is_open(case: pb.Case) -> bool:
    return case.status not in CLOSED_STATUSES


def has_deadline(case: pb.Case) -> bool:
    return case.HasField("deadline")


def need(text: str, field: str, what: str) -> None:
    if not text.strip():
        raise InvalidArgument(field, f"{what}不能为空")


def received(case: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
    if case is not None:
        raise IllegalTransition(f"案件 {case.receipt_no} 已受理，不能重复受理")
    new = pb.Case()
    new.CopyFrom(event.received.case)
    new.id = event.case_id
    new.holder_node = event.node
    new.status = pb.CASE_STATUS_RECEIVED
    new.received_at.CopyFrom(event.at)
    return new


def set_deadline(case: pb.Case, deadline: Timestamp) -> None:
    """Move the running clock's end; warnings and 督办 are owed afresh for a new deadline."""
    if case.deadline != deadline:
        case.deadline.CopyFrom(deadline)
        case.ClearField("warned_for")
        case.ClearField("supervised_for")


def triaged(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.triaged
    need(step.category, "category", "案件类别")
    if step.response_class == pb.RESPONSE_CLASS_UNSPECIFIED:
        raise InvalidArgument("response_class", "请选择响应级别（即办、应急或攻坚）")
    if not step.HasField("deadline"):
        raise InvalidArgument("deadline", "分类研判须确定办理时限")
    if step.deadline.ToDatetime() <= case.clock_start.ToDatetime():
        raise InvalidArgument("deadline", "办理时限必须晚于计时起点")
    case.category = step.category
    case.response_class = step.response_class
    set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_TRIAGED


def assigned(case: pb.Case, event: pb.CaseEvent) -> None:
    slip = event.assigned.slip
    need(slip.department, "slip.department", "承办部门")
    need(slip.requirement, "slip.requirement", "办理要求")
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


def acknowledged(case: pb.Case, event: pb.CaseEvent) -> None:
    case.acknowledged = True
    case.status = pb.CASE_STATUS_ACKNOWLEDGED


def returned(case: pb.Case, event: pb.CaseEvent) -> None:
    need(event.returned.reason, "reason", "退单理由")
    case.returns += 1
    case.acknowledged = False
    case.ClearField("pending_extension")
    case.status = pb.CASE_STATUS_RETURNED


def extension_requested(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.extension_requested
    if case.HasField("pending_extension"):
        raise IllegalTransition("已有延期申请待审批，不能重复申请")
    need(step.reason, "reason", "延期理由")
    if not step.HasField("new_deadline") or step.new_deadline.ToDatetime() <= case.deadline.ToDatetime():
        raise InvalidArgument("new_deadline", "申请的新时限必须晚于当前时限")
    case.pending_extension.CopyFrom(step)


def extension_decided(case: pb.Case, event: pb.CaseEvent) -> None:
    if not case.HasField("pending_extension"):
        raise IllegalTransition("没有待审批的延期申请")
    step = event.extension_decided
    if not step.granted:
        need(step.reason, "reason", "不予延期的理由")
    else:
        set_deadline(case, case.pending_extension.new_deadline)
        case.assignment.deadline.CopyFrom(case.pending_extension.new_deadline)
    case.ClearField("pending_extension")


def started(case: pb.Case, event: pb.CaseEvent) -> None:
    case.status = pb.CASE_STATUS_IN_PROGRESS


def progress(case: pb.Case, event: pb.CaseEvent) -> None:
    need(event.progress.note, "note", "进展情况")


def feedback(case: pb.Case, event: pb.CaseEvent) -> None:
    slip = event.feedback.slip
    need(slip.result, "slip.result", "处置结果")
    case.feedback.CopyFrom(slip)
    case.ClearField("pending_extension")
    case.status = pb.CASE_STATUS_FEEDBACK


def reviewed(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.reviewed
    if step.approved:
        case.review_approved = True
        case.status = pb.CASE_STATUS_REVIEWED
        return
    need(step.opinion, "opinion", "审核不通过的意见")
    case.reworks += 1
    case.ClearField("feedback")
    case.status = pb.CASE_STATUS_IN_PROGRESS


def closed(case: pb.Case, event: pb.CaseEvent) -> None:
    if not case.HasField("feedback") or not case.review_approved:
        raise IllegalTransition("没有经审核通过的反馈单，不能办结")
    undone = [f"{t.department}（{t.task}）" for t in case.subtasks if not t.HasField("done_at")]
    if undone:
        raise IllegalTransition(f"攻坚专班尚有子任务未完成，不能办结：{'、'.join(undone)}")
    step = event.closed
    if step.resolved_tier == 0:
        raise InvalidArgument("resolved_tier", "办结须记录化解层级")
    case.mediation_level = step.mediation_level or case.feedback.mediation_level
    need(case.mediation_level, "mediation_level", "化解方式（调解层级）")
    case.resolved_tier = step.resolved_tier
    case.closed_at.CopyFrom(event.at)
    case.status = pb.CASE_STATUS_CLOSED


def follow_up(case: pb.Case, event: pb.CaseEvent) -> None:
    slip = event.follow_up.slip
    if not 1 <= slip.satisfaction <= 5:
        raise InvalidArgument("slip.satisfaction", "满意度须为 1–5")
    case.evaluation.CopyFrom(slip)
    case.status = pb.CASE_STATUS_FOLLOWED_UP


def reopened(case: pb.Case, event: pb.CaseEvent) -> None:
    if case.evaluation.satisfaction > UNSATISFIED_MAX:
        raise IllegalTransition("回访满意，不能发回重办")
    step = event.reopened
    need(step.reason, "reason", "发回重办理由")
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
    set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_REOPENED


def archived(case: pb.Case, event: pb.CaseEvent) -> None:
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


def deadline_warning(case: pb.Case, event: pb.CaseEvent) -> None:
    _alarm(case, event.deadline_warning.deadline, "warned_for", "预警")


def supervision(case: pb.Case, event: pb.CaseEvent) -> None:
    need(event.supervision.to_node, "to_node", "督办单位")
    _alarm(case, event.supervision.deadline, "supervised_for", "督办")
    case.supervisions += 1


def escalation_requested(case: pb.Case, event: pb.CaseEvent) -> None:
    step = event.escalation_requested
    need(step.reason, "reason", "上报理由")
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


def escalation_accepted(case: pb.Case, event: pb.CaseEvent) -> None:
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
    set_deadline(case, step.deadline)
    case.status = pb.CASE_STATUS_RECEIVED


def escalation_refused(case: pb.Case, event: pb.CaseEvent) -> None:
    need(event.escalation_refused.reason, "reason", "退回上报的理由")
    case.status = case.status_before_escalation
    case.escalation_to = ""
    case.status_before_escalation = pb.CASE_STATUS_UNSPECIFIED
