"""The closed loop (闭环) as a pure state machine: examples, then properties over random step sequences."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from fengqiao.cases import lifecycle
from fengqiao.cases.lifecycle import apply, fold, invariant_violations
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2

VILLAGE = "371702101001"
TOWN = "371702101"
CASE_ID = "0b7e3c2a-6f55-4d0e-9a57-3a1f3c1d2e01"
T0 = dt.datetime(2024, 5, 6, 8, 0, tzinfo=dt.UTC)

# The payload message of each event type (the oneof field name is the type).
PAYLOADS: dict[str, type[Message]] = {
    "triaged": pb.Triaged,
    "assigned": pb.Assigned,
    "acknowledged": pb.Acknowledged,
    "returned": pb.Returned,
    "extension_requested": pb.ExtensionRequested,
    "extension_decided": pb.ExtensionDecided,
    "started": pb.Started,
    "progress": pb.Progress,
    "feedback": pb.FeedbackGiven,
    "reviewed": pb.Reviewed,
    "closed": pb.Closed,
    "follow_up": pb.FollowedUp,
    "reopened": pb.Reopened,
    "archived": pb.Archived,
    "deadline_warning": pb.DeadlineWarning,
    "supervision": pb.Supervision,
}
STEP_KINDS = tuple(PAYLOADS)  # the closed loop at one tier; 上报 has its own tests
ALARMS = ("deadline_warning", "supervision")


# Building blocks ---------------------------------------------------------------------------


def ts(when: dt.datetime) -> Any:
    out = pb.Case().deadline  # a fresh Timestamp
    out.FromDatetime(when)
    return out


def utc(stamp: Any) -> dt.datetime:
    return stamp.ToDatetime(tzinfo=dt.UTC)


def received_event(
    *,
    at: dt.datetime = T0,
    case_id: str = CASE_ID,
    seq: int = 1,
    response_class: int = pb.RESPONSE_CLASS_ROUTINE,
    hours: float = 24,
) -> pb.CaseEvent:
    """The 受理 event as intake writes it: the clock starts now, provisional deadline set."""
    intake = pb.Case(
        receipt_no="SL-371702101001-20240506-0001",
        origin_node=VILLAGE,
        division_code=VILLAGE,
        grid="第2网格",
        channel="网格员上报",
        category="邻里",
        response_class=response_class,  # type: ignore[arg-type]
        description="邻居房檐滴水落入申请人院内，请求村里调解。",
        reporter="网格员王芳",
        client_request_id="test-lifecycle",
    )
    intake.clock_start.FromDatetime(at)
    intake.deadline.FromDatetime(at + dt.timedelta(hours=hours))
    received = pb.CaseEvent(
        id=f"ev-{seq}", case_id=case_id, seq=seq, node=VILLAGE, actor="网格员王芳", received=pb.Received(case=intake)
    )
    received.at.FromDatetime(at)
    return received


def make_event(kind: str, payload: Message | None, *, case_id: str, seq: int, at: dt.datetime) -> pb.CaseEvent:
    built = pb.CaseEvent(id=f"ev-{seq}", case_id=case_id, seq=seq, node=VILLAGE, actor="中心工作人员")
    built.at.FromDatetime(at)
    getattr(built, kind).CopyFrom(payload if payload is not None else PAYLOADS[kind]())
    return built


def snapshot(case: pb.Case | None) -> pb.Case | None:
    if case is None:
        return None
    copy = pb.Case()
    copy.CopyFrom(case)
    return copy


class Story:
    """One case's log, built step by step: the next seq number and a time a few minutes later."""

    def __init__(self, **received: Any) -> None:
        self.at = T0
        first = received_event(at=self.at, **received)
        self.events = [first]
        self.case = apply(None, first)

    def next_event(self, kind: str, payload: Message | None = None, **envelope: Any) -> pb.CaseEvent:
        fields = {"case_id": self.case.id, "seq": self.case.version + 1, "at": self.at + dt.timedelta(minutes=5)}
        fields.update(envelope)
        return make_event(kind, payload, **fields)

    def step(self, kind: str, payload: Message | None = None) -> pb.Case:
        built = self.next_event(kind, payload)
        self.case = apply(self.case, built)
        self.events.append(built)
        self.at = utc(built.at)
        return self.case

    def refuse(
        self, kind: str, payload: Message | None = None, error: type[Exception] = IllegalTransition, **envelope: Any
    ) -> Exception:
        """The step is refused with ``error`` and the case given to ``apply`` is left as it was."""
        before = snapshot(self.case)
        built = self.next_event(kind, payload, **envelope)
        with pytest.raises(error) as caught:
            apply(self.case, built)
        assert self.case == before
        return caught.value

    def run(self, *kinds: str) -> pb.Case:
        for kind in kinds:
            self.step(kind, valid_payload(kind, self.case))
        return self.case


def feedback_slip(result: str = "双方达成调解协议，已拆除滴水檐", level: str = "网格员现场调解") -> pb.FeedbackGiven:
    return pb.FeedbackGiven(
        slip=pb.FeedbackSlip(
            result=result, photos=["a" * 64], signatures=["b" * 64], mediated=True, mediation_level=level
        )
    )


def valid_payload(kind: str, case: pb.Case) -> Message:
    """A well-formed payload for ``kind`` given the case as it stands (what a careful operator sends)."""
    later = utc(case.deadline) + dt.timedelta(hours=24)
    if kind == "triaged":
        return pb.Triaged(
            category="邻里",
            response_class=pb.RESPONSE_CLASS_ROUTINE,
            deadline=ts(utc(case.clock_start) + dt.timedelta(hours=24)),
        )
    if kind == "assigned":
        return pb.Assigned(slip=pb.AssignmentSlip(department="司法所", requirement="依法调解邻里纠纷"))
    if kind == "acknowledged":
        return pb.Acknowledged(department=case.assignment.department)
    if kind == "returned":
        return pb.Returned(reason="不属于本部门职责")
    if kind == "extension_requested":
        return pb.ExtensionRequested(reason="当事人外出务工，需等待返乡", new_deadline=ts(later))
    if kind == "extension_decided":
        return pb.ExtensionDecided(granted=True)
    if kind == "started":
        return pb.Started(note="已联系双方当事人")
    if kind == "progress":
        return pb.Progress(note="已组织双方面谈")
    if kind == "feedback":
        return feedback_slip()
    if kind == "reviewed":
        return pb.Reviewed(approved=True, opinion="材料齐全")
    if kind == "closed":
        return pb.Closed(summary="调解成功", mediation_level="网格员现场调解", resolved_tier=common_pb2.TIER_VILLAGE)
    if kind == "follow_up":
        return pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=5, comment="满意", method="电话回访"))
    if kind == "reopened":
        return pb.Reopened(reason="回访不满意", deadline=ts(utc(case.updated_at) + dt.timedelta(hours=48)))
    if kind == "archived":
        return pb.Archived(note="归档")
    if kind == "deadline_warning":
        return pb.DeadlineWarning(deadline=case.deadline)
    if kind == "supervision":
        return pb.Supervision(deadline=case.deadline, to_node=TOWN)
    raise AssertionError(kind)


TO_CLOSED = ("triaged", "assigned", "acknowledged", "started", "feedback", "reviewed", "closed")
TO_IN_PROGRESS = ("triaged", "assigned", "acknowledged", "started")


def case_in(status: int, **fields: Any) -> pb.Case:
    """A hand-made case standing at ``status`` (for checks of the transition table itself)."""
    case = apply(None, received_event())
    case.status = status  # type: ignore[assignment]
    for name, value in fields.items():
        field = getattr(case, name)
        if isinstance(field, Message):
            field.CopyFrom(value)
        else:
            setattr(case, name, value)
    return case


# The happy path ----------------------------------------------------------------------------


def test_a_case_taken_through_the_whole_closed_loop_folds_to_archived() -> None:
    story = Story()
    received = story.case
    assert received.status == pb.CASE_STATUS_RECEIVED
    assert received.id == CASE_ID and received.holder_node == VILLAGE and received.version == 1
    assert received.received_at == ts(T0)

    story.run("triaged", "assigned", "acknowledged", "started", "progress", "feedback", "reviewed")
    assert story.case.status == pb.CASE_STATUS_REVIEWED and story.case.review_approved
    closed = story.step(
        "closed", pb.Closed(summary="调解成功", mediation_level="中心联合调解", resolved_tier=common_pb2.TIER_VILLAGE)
    )
    closed_at = story.events[-1].at
    assert closed.status == pb.CASE_STATUS_CLOSED
    evaluation = pb.EvaluationSlip(satisfaction=4, comment="处理及时", method="上门回访")
    story.step("follow_up", pb.FollowedUp(slip=evaluation))
    assert story.case.status == pb.CASE_STATUS_FOLLOWED_UP
    archived = story.step("archived")

    assert archived.status == pb.CASE_STATUS_ARCHIVED
    assert archived.resolved_tier == common_pb2.TIER_VILLAGE
    assert archived.mediation_level == "中心联合调解"
    assert archived.evaluation == evaluation
    assert archived.closed_at == closed_at
    assert archived.feedback == feedback_slip().slip
    assert archived.assignment.department == "司法所"
    assert archived.assignment.deadline == archived.deadline  # the slip without a deadline takes the case's
    assert archived.acknowledged
    assert archived.version == len(story.events) == 11
    assert archived.updated_at == story.events[-1].at
    assert (archived.returns, archived.reworks, archived.reopens, archived.supervisions) == (0, 0, 0, 0)
    assert invariant_violations(archived) == []
    assert fold(story.events) == archived
    shuffled = list(story.events)
    random.Random(7).shuffle(shuffled)
    assert fold(shuffled) == archived  # the fold orders by sequence number


def test_the_fold_of_no_events_is_no_case() -> None:
    assert fold([]) is None


def test_closing_without_a_mediation_level_takes_the_one_on_the_feedback_slip() -> None:
    story = Story()
    story.run(*TO_CLOSED[:-1])
    closed = story.step("closed", pb.Closed(summary="调解成功", resolved_tier=common_pb2.TIER_TOWN))
    assert closed.mediation_level == "网格员现场调解"
    assert closed.resolved_tier == common_pb2.TIER_TOWN


# 分类研判 and 交办 -------------------------------------------------------------------------


def test_triage_sets_category_class_and_deadline() -> None:
    story = Story()
    deadline = T0 + dt.timedelta(hours=2)
    case = story.step(
        "triaged", pb.Triaged(category="治安隐患", response_class=pb.RESPONSE_CLASS_URGENT, deadline=ts(deadline))
    )
    assert (case.status, case.category, case.response_class) == (
        pb.CASE_STATUS_TRIAGED,
        "治安隐患",
        pb.RESPONSE_CLASS_URGENT,
    )
    assert case.deadline == ts(deadline)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            pb.Triaged(
                category=" ", response_class=pb.RESPONSE_CLASS_ROUTINE, deadline=ts(T0 + dt.timedelta(hours=24))
            ),
            "category",
        ),
        (pb.Triaged(category="邻里", deadline=ts(T0 + dt.timedelta(hours=24))), "response_class"),
        (pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_TASK_FORCE), "deadline"),
        (pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_TASK_FORCE, deadline=ts(T0)), "deadline"),
    ],
)
def test_triage_needs_a_category_a_response_class_and_a_deadline_after_the_clock_start(
    payload: pb.Triaged, field: str
) -> None:
    error = Story().refuse("triaged", payload, InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == field


@pytest.mark.parametrize(
    ("slip", "field"),
    [
        (pb.AssignmentSlip(department="", requirement="依法调解"), "slip.department"),
        (pb.AssignmentSlip(department="司法所", requirement="  "), "slip.requirement"),
    ],
)
def test_an_assignment_slip_needs_a_department_and_a_requirement(slip: pb.AssignmentSlip, field: str) -> None:
    story = Story()
    story.run("triaged")
    error = story.refuse("assigned", pb.Assigned(slip=slip), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == field


def test_an_assignment_slip_with_its_own_deadline_keeps_it() -> None:
    story = Story()
    story.run("triaged")
    own = T0 + dt.timedelta(hours=12)
    case = story.step(
        "assigned", pb.Assigned(slip=pb.AssignmentSlip(department="派出所", requirement="现场核查", deadline=ts(own)))
    )
    assert case.assignment.deadline == ts(own)
    assert not case.acknowledged


@pytest.mark.parametrize("hours", [-1, 48])
def test_an_assignment_slip_deadline_must_lie_within_the_case_clock(hours: int) -> None:
    story = Story()
    story.run("triaged")
    slip = pb.AssignmentSlip(department="派出所", requirement="现场核查", deadline=ts(T0 + dt.timedelta(hours=hours)))
    error = story.refuse("assigned", pb.Assigned(slip=slip), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "slip.deadline"


def test_a_reopen_deadline_must_lie_in_the_future() -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.step("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=1)))
    past = pb.Reopened(reason="回访不满意", deadline=ts(story.at - dt.timedelta(hours=1)))
    error = story.refuse("reopened", past, InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "deadline"


# 退单 ----------------------------------------------------------------------------------------


def test_a_return_needs_a_reason() -> None:
    story = Story()
    story.run("triaged", "assigned")
    error = story.refuse("returned", pb.Returned(reason="  "), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "reason"


def test_a_returned_case_goes_back_to_the_center_and_can_be_assigned_again() -> None:
    story = Story()
    story.run("triaged", "assigned", "acknowledged")
    returned = story.step("returned", pb.Returned(reason="不属于本部门职责"))
    assert returned.status == pb.CASE_STATUS_RETURNED
    assert returned.returns == 1 and not returned.acknowledged
    story.refuse("acknowledged")
    story.refuse("started")
    reassigned = story.step(
        "assigned", pb.Assigned(slip=pb.AssignmentSlip(department="人民调解委员会", requirement="组织调解"))
    )
    assert reassigned.status == pb.CASE_STATUS_ASSIGNED
    assert reassigned.assignment.department == "人民调解委员会"
    story.run("returned", "triaged", "assigned")  # a returned case may also be triaged afresh
    assert story.case.returns == 2 and story.case.status == pb.CASE_STATUS_ASSIGNED


def test_a_return_is_refused_once_handling_has_started() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS)
    story.refuse("returned", pb.Returned(reason="不属于本部门职责"))


def test_a_return_drops_a_pending_extension_request() -> None:
    story = Story()
    story.run("triaged", "assigned", "extension_requested")
    assert story.case.HasField("pending_extension")
    case = story.step("returned", pb.Returned(reason="不属于本部门职责"))
    assert not case.HasField("pending_extension")
    assert invariant_violations(case) == []


# 延期 ----------------------------------------------------------------------------------------


def test_a_granted_extension_moves_the_deadline_and_owes_the_alarms_afresh() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS, "deadline_warning", "supervision")
    old = story.case.deadline
    assert story.case.warned_for == old and story.case.supervised_for == old
    new_deadline = utc(old) + dt.timedelta(hours=48)
    pending = story.step(
        "extension_requested", pb.ExtensionRequested(reason="需等待鉴定结果", new_deadline=ts(new_deadline))
    )
    assert pending.deadline == old and pending.pending_extension.new_deadline == ts(new_deadline)
    granted = story.step("extension_decided", pb.ExtensionDecided(granted=True))
    assert granted.deadline == ts(new_deadline)
    assert granted.assignment.deadline == ts(new_deadline)
    assert not granted.HasField("pending_extension")
    assert not granted.HasField("warned_for") and not granted.HasField("supervised_for")
    assert granted.status == pb.CASE_STATUS_IN_PROGRESS


def test_a_refused_extension_needs_a_reason_and_keeps_the_deadline() -> None:
    story = Story()
    story.run("triaged", "assigned", "acknowledged", "extension_requested")
    old = story.case.deadline
    error = story.refuse("extension_decided", pb.ExtensionDecided(granted=False, reason=" "), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "reason"
    refused = story.step("extension_decided", pb.ExtensionDecided(granted=False, reason="时限内可以办结"))
    assert refused.deadline == old
    assert not refused.HasField("pending_extension")


def test_a_second_extension_request_while_one_is_pending_is_refused() -> None:
    story = Story()
    story.run("triaged", "assigned", "extension_requested")
    story.refuse("extension_requested", valid_payload("extension_requested", story.case), IllegalTransition)


@pytest.mark.parametrize(
    ("reason", "hours", "field"),
    [
        ("", 24, "reason"),
        ("需等待鉴定", 0, "new_deadline"),
        ("需等待鉴定", -1, "new_deadline"),
        ("需等待鉴定", None, "new_deadline"),
    ],
)
def test_an_extension_request_needs_a_reason_and_a_later_deadline(reason: str, hours: int | None, field: str) -> None:
    story = Story()
    story.run("triaged", "assigned")
    step = pb.ExtensionRequested(reason=reason)
    if hours is not None:
        step.new_deadline.FromDatetime(utc(story.case.deadline) + dt.timedelta(hours=hours))
    error = story.refuse("extension_requested", step, InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == field


def test_an_extension_decision_without_a_pending_request_is_refused() -> None:
    story = Story()
    story.run("triaged", "assigned")
    story.refuse("extension_decided", pb.ExtensionDecided(granted=True))


def test_an_extension_is_refused_before_assignment_and_after_feedback() -> None:
    story = Story()
    story.refuse("extension_requested", valid_payload("extension_requested", story.case))
    story.run(*TO_IN_PROGRESS, "feedback")
    story.refuse("extension_requested", valid_payload("extension_requested", story.case))


# 审核 ----------------------------------------------------------------------------------------


def test_a_rejected_review_needs_an_opinion() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS, "feedback")
    error = story.refuse("reviewed", pb.Reviewed(approved=False, opinion=""), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "opinion"


def test_a_rejected_review_clears_the_feedback_and_sends_the_case_back_to_handling() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS, "feedback")
    rework = story.step("reviewed", pb.Reviewed(approved=False, opinion="缺少双方签字"))
    assert rework.status == pb.CASE_STATUS_IN_PROGRESS
    assert not rework.HasField("feedback") and not rework.review_approved
    assert rework.reworks == 1
    story.refuse("closed", valid_payload("closed", rework))
    story.run("feedback", "reviewed", "closed")
    assert story.case.status == pb.CASE_STATUS_CLOSED and story.case.reworks == 1


def test_feedback_needs_a_result() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS)
    error = story.refuse("feedback", feedback_slip(result=" "), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "slip.result"


def test_progress_needs_a_note() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS)
    story.refuse("progress", pb.Progress(note=""), InvalidArgument)
    assert story.step("progress", pb.Progress(note="已约谈")).status == pb.CASE_STATUS_IN_PROGRESS


# 办结 ----------------------------------------------------------------------------------------


def test_case_cannot_close_without_an_approved_feedback_slip() -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS)
    story.refuse("closed", valid_payload("closed", story.case))  # no feedback yet
    story.run("feedback")
    story.refuse("closed", valid_payload("closed", story.case))  # feedback not reviewed


def test_case_cannot_close_from_reviewed_when_the_slip_is_missing_or_not_approved() -> None:
    without_slip = case_in(pb.CASE_STATUS_REVIEWED, review_approved=True)
    not_approved = case_in(pb.CASE_STATUS_REVIEWED, feedback=feedback_slip().slip, review_approved=False)
    for case in (without_slip, not_approved):
        before = snapshot(case)
        closing = make_event("closed", valid_payload("closed", case), case_id=case.id, seq=2, at=T0)
        with pytest.raises(IllegalTransition):
            apply(case, closing)
        assert case == before


@pytest.mark.parametrize(
    ("payload", "level_on_slip", "field"),
    [
        (pb.Closed(summary="调解成功", mediation_level="网格员现场调解"), "网格员现场调解", "resolved_tier"),
        (pb.Closed(summary="调解成功", resolved_tier=common_pb2.TIER_VILLAGE), "", "mediation_level"),
    ],
)
def test_closing_needs_a_resolved_tier_and_a_mediation_level(
    payload: pb.Closed, level_on_slip: str, field: str
) -> None:
    story = Story()
    story.run(*TO_IN_PROGRESS)
    story.step("feedback", feedback_slip(level=level_on_slip))
    story.run("reviewed")
    error = story.refuse("closed", payload, InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == field


# 回访, 发回重办 and 归档 -----------------------------------------------------------------------


@pytest.mark.parametrize("satisfaction", [-1, 0, 6, 10])
def test_follow_up_satisfaction_outside_one_to_five_is_refused(satisfaction: int) -> None:
    story = Story()
    story.run(*TO_CLOSED)
    error = story.refuse("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=satisfaction)), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "slip.satisfaction"


def test_follow_up_is_refused_before_the_case_is_closed() -> None:
    story = Story()
    story.run(*TO_CLOSED[:-1])
    story.refuse("follow_up", valid_payload("follow_up", story.case))


@pytest.mark.parametrize("satisfaction", [1, 2])
def test_an_unsatisfied_follow_up_reopens_the_case_with_a_new_clock(satisfaction: int) -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.step("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=satisfaction, comment="问题未解决")))
    new_deadline = story.at + dt.timedelta(hours=24, minutes=5)
    reopened = story.step("reopened", pb.Reopened(reason="回访不满意", deadline=ts(new_deadline)))
    assert reopened.status == pb.CASE_STATUS_REOPENED
    assert reopened.reopens == 1
    assert not reopened.HasField("feedback") and not reopened.review_approved and not reopened.acknowledged
    assert not reopened.HasField("closed_at")
    assert reopened.resolved_tier == common_pb2.TIER_UNSPECIFIED and reopened.mediation_level == ""
    assert reopened.clock_start == story.events[-1].at
    assert reopened.deadline == ts(new_deadline)
    assert invariant_violations(reopened) == []

    story.run(*TO_CLOSED)
    story.run("follow_up", "archived")
    assert story.case.status == pb.CASE_STATUS_ARCHIVED
    assert story.case.reopens == 1 and story.case.evaluation.satisfaction == 5
    assert fold(story.events) == story.case


@pytest.mark.parametrize("satisfaction", [3, 4, 5])
def test_a_satisfied_follow_up_cannot_be_reopened(satisfaction: int) -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.step("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=satisfaction)))
    story.refuse("reopened", valid_payload("reopened", story.case), IllegalTransition)


def test_reopen_needs_a_reason_and_a_new_deadline() -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.step("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=1)))
    deadline = ts(story.at + dt.timedelta(hours=24))
    assert story.refuse("reopened", pb.Reopened(reason="", deadline=deadline), InvalidArgument).field == "reason"  # type: ignore[attr-defined]
    assert story.refuse("reopened", pb.Reopened(reason="回访不满意"), InvalidArgument).field == "deadline"  # type: ignore[attr-defined]


def test_reopen_is_refused_before_any_follow_up() -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.refuse("reopened", valid_payload("reopened", story.case))


def test_archive_is_refused_after_an_unsatisfied_follow_up() -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.step("follow_up", pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=2)))
    story.refuse("archived")


def test_archive_is_refused_before_any_follow_up() -> None:
    story = Story()
    story.refuse("archived")
    story.run(*TO_CLOSED)
    story.refuse("archived")
    without_evaluation = case_in(pb.CASE_STATUS_FOLLOWED_UP, feedback=feedback_slip().slip, review_approved=True)
    before = snapshot(without_evaluation)
    with pytest.raises(IllegalTransition):
        apply(without_evaluation, make_event("archived", None, case_id=CASE_ID, seq=2, at=T0))
    assert without_evaluation == before


def test_nothing_follows_an_archived_case() -> None:
    story = Story()
    story.run(*TO_CLOSED, "follow_up", "archived")
    for kind in STEP_KINDS:
        story.refuse(kind, valid_payload(kind, story.case), (IllegalTransition, InvalidArgument))  # type: ignore[arg-type]


# 临期预警 and 督办 -------------------------------------------------------------------------------


def test_a_deadline_warning_is_raised_only_once_for_the_same_deadline() -> None:
    story = Story()
    warned = story.step("deadline_warning", pb.DeadlineWarning(deadline=story.case.deadline))
    assert warned.warned_for == warned.deadline
    assert warned.status == pb.CASE_STATUS_RECEIVED  # an alarm does not move the case
    story.refuse("deadline_warning", pb.DeadlineWarning(deadline=warned.deadline))


def test_supervision_is_raised_only_once_for_the_same_deadline_and_is_counted() -> None:
    story = Story()
    story.run("triaged", "assigned")
    supervised = story.step("supervision", pb.Supervision(deadline=story.case.deadline, to_node=TOWN))
    assert supervised.supervised_for == supervised.deadline and supervised.supervisions == 1
    story.refuse("supervision", pb.Supervision(deadline=supervised.deadline, to_node=TOWN))


def test_supervision_needs_the_supervising_node() -> None:
    story = Story()
    error = story.refuse("supervision", pb.Supervision(deadline=story.case.deadline), InvalidArgument)
    assert isinstance(error, InvalidArgument) and error.field == "to_node"


def test_alarms_are_allowed_again_once_the_deadline_moves() -> None:
    story = Story()
    story.run("deadline_warning", "supervision")
    story.refuse("deadline_warning", valid_payload("deadline_warning", story.case))
    story.refuse("supervision", valid_payload("supervision", story.case))
    story.step(  # triage sets the class's own deadline
        "triaged",
        pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_URGENT, deadline=ts(T0 + dt.timedelta(hours=2))),
    )
    assert not story.case.HasField("warned_for") and not story.case.HasField("supervised_for")
    story.run("deadline_warning", "supervision", "assigned", "extension_requested", "extension_decided")
    assert story.case.supervisions == 2
    story.run("deadline_warning", "supervision")
    assert story.case.supervisions == 3
    assert story.case.warned_for == story.case.deadline == story.case.supervised_for


def test_triage_keeping_the_same_deadline_does_not_owe_the_alarms_again() -> None:
    story = Story()
    story.run("deadline_warning")
    same = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE, deadline=story.case.deadline)
    assert story.step("triaged", same).warned_for == story.case.deadline
    story.refuse("deadline_warning", valid_payload("deadline_warning", story.case))


def test_an_alarm_for_another_deadline_is_refused() -> None:
    story = Story()
    other = ts(utc(story.case.deadline) - dt.timedelta(hours=1))
    story.refuse("deadline_warning", pb.DeadlineWarning(deadline=other))
    story.refuse("deadline_warning", pb.DeadlineWarning())
    story.refuse("supervision", pb.Supervision(deadline=other, to_node=TOWN))


def test_alarms_are_refused_once_the_case_is_closed() -> None:
    story = Story()
    story.run(*TO_CLOSED)
    story.refuse("deadline_warning", valid_payload("deadline_warning", story.case))
    story.refuse("supervision", valid_payload("supervision", story.case))


def test_alarms_are_refused_for_a_case_without_a_clock() -> None:
    case = case_in(pb.CASE_STATUS_ASSIGNED)
    case.ClearField("deadline")
    before = snapshot(case)
    with pytest.raises(IllegalTransition):
        apply(case, make_event("deadline_warning", pb.DeadlineWarning(), case_id=CASE_ID, seq=2, at=T0))
    assert case == before


# Sequence ------------------------------------------------------------------------------------


def test_an_event_with_a_gap_in_the_sequence_is_refused() -> None:
    story = Story()
    story.refuse("triaged", valid_payload("triaged", story.case), seq=3)


def test_an_event_repeating_a_sequence_number_is_refused() -> None:
    story = Story()
    story.run("triaged")
    story.refuse("assigned", valid_payload("assigned", story.case), seq=2)
    story.refuse("assigned", valid_payload("assigned", story.case), seq=0)


def test_an_event_of_another_case_is_refused() -> None:
    story = Story()
    story.refuse("triaged", valid_payload("triaged", story.case), case_id="another-case")


def test_a_case_cannot_be_received_twice() -> None:
    story = Story()
    again = received_event(seq=2, at=T0 + dt.timedelta(minutes=1))
    before = snapshot(story.case)
    with pytest.raises(IllegalTransition):
        apply(story.case, again)
    with pytest.raises(IllegalTransition):
        apply(story.case, received_event())  # the very same first event replayed
    assert story.case == before


def test_a_step_before_the_case_was_received_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        apply(None, make_event("triaged", None, case_id=CASE_ID, seq=1, at=T0))
    with pytest.raises(IllegalTransition):
        apply(None, received_event(seq=2))


def test_an_event_without_a_payload_is_refused() -> None:
    story = Story()
    empty = pb.CaseEvent(id="ev-x", case_id=CASE_ID, seq=2, node=VILLAGE)
    with pytest.raises(InvalidArgument):
        apply(story.case, empty)


def test_received_takes_identity_and_holder_from_the_event() -> None:
    first = received_event(case_id="case-42")
    case = apply(None, first)
    assert case.id == "case-42" and case.holder_node == VILLAGE
    assert case.status == pb.CASE_STATUS_RECEIVED and case.version == 1
    assert case.received_at == first.at == case.updated_at
    assert case.deadline == first.received.case.deadline
    assert first.received.case.id == ""  # the event itself is not touched


# The transition table --------------------------------------------------------------------------


def _refused_from_status() -> list[tuple[int, str]]:
    pairs = []
    for status in lifecycle.STATUS_LABELS:
        for kind, allowed in lifecycle._FROM.items():
            if kind in STEP_KINDS and status not in allowed:  # escalation: test_escalation_lifecycle
                pairs.append((status, kind))
    return pairs


@pytest.mark.parametrize(("status", "kind"), _refused_from_status())
def test_a_step_is_refused_from_a_status_the_table_does_not_list(status: int, kind: str) -> None:
    case = case_in(
        status,
        feedback=feedback_slip().slip,
        review_approved=True,
        evaluation=pb.EvaluationSlip(satisfaction=1),
        pending_extension=pb.ExtensionRequested(reason="x", new_deadline=ts(T0 + dt.timedelta(hours=48))),
        resolved_tier=common_pb2.TIER_VILLAGE,
        mediation_level="网格员现场调解",
    )
    before = snapshot(case)
    with pytest.raises(IllegalTransition):
        apply(case, make_event(kind, valid_payload(kind, case), case_id=CASE_ID, seq=2, at=T0 + dt.timedelta(hours=1)))
    assert case == before


# Properties --------------------------------------------------------------------------------------

# A deadline in a command is relative to the case at the time it is applied: (anchor, minutes) or None.
Deadline = tuple[str, int] | None


def _mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """A valid value five times in six (so that sequences get deep), else an invalid one."""
    return st.sampled_from(valid * 5 * len(invalid) + invalid * len(valid))


PARAMS = st.fixed_dictionaries(
    {
        "category": _mostly(["邻里", "婚姻家庭"], ["", " "]),
        "response_class": _mostly(
            [pb.RESPONSE_CLASS_ROUTINE, pb.RESPONSE_CLASS_URGENT, pb.RESPONSE_CLASS_TASK_FORCE],
            [pb.RESPONSE_CLASS_UNSPECIFIED],
        ),
        "triage_deadline": _mostly(
            [("start", 120), ("start", 24 * 60), ("start", 3 * 24 * 60), ("deadline", 0)],
            [("start", 0), ("start", -60), None],
        ),
        "department": _mostly(["司法所", "派出所"], [""]),
        "requirement": _mostly(["依法调解"], [" "]),
        "slip_deadline": st.sampled_from([None, None, None, ("deadline", -60), ("deadline", 60)]),
        "reason": _mostly(["理由充分"], ["", "  "]),
        "new_deadline": _mostly([("deadline", 60), ("deadline", 24 * 60)], [("deadline", 0), ("deadline", -60), None]),
        "granted": st.booleans(),
        "approved": st.booleans(),
        "opinion": _mostly(["证据不足"], [""]),
        "note": _mostly(["已约谈双方"], [""]),
        "result": _mostly(["已调解"], [" "]),
        "slip_level": _mostly(["网格员现场调解"], [""]),
        "close_level": st.sampled_from(["", "中心联合调解"]),
        "resolved_tier": _mostly(
            [common_pb2.TIER_VILLAGE, common_pb2.TIER_TOWN, common_pb2.TIER_COUNTY], [common_pb2.TIER_UNSPECIFIED]
        ),
        "satisfaction": st.integers(min_value=0, max_value=6),
        "reopen_deadline": _mostly([("now", 24 * 60), ("now", 48 * 60)], [None]),
        "alarm_deadline": _mostly([("deadline", 0)], [("deadline", -60), ("deadline", 60), None]),
        "to_node": _mostly([TOWN], [""]),
    }
)
# A command's kind is an event type, or (three times in four) an int i: "the i-th step the current
# status allows, alarms aside", where 0 is the step forward; so random sequences also reach deep states.
FORWARD = {
    pb.CASE_STATUS_RECEIVED: "triaged",
    pb.CASE_STATUS_TRIAGED: "assigned",
    pb.CASE_STATUS_ASSIGNED: "acknowledged",
    pb.CASE_STATUS_ACKNOWLEDGED: "started",
    pb.CASE_STATUS_IN_PROGRESS: "feedback",
    pb.CASE_STATUS_FEEDBACK: "reviewed",
    pb.CASE_STATUS_REVIEWED: "closed",
    pb.CASE_STATUS_CLOSED: "follow_up",
    pb.CASE_STATUS_FOLLOWED_UP: "archived",
    pb.CASE_STATUS_RETURNED: "assigned",
    pb.CASE_STATUS_REOPENED: "triaged",
}
KIND = st.one_of(st.sampled_from(STEP_KINDS), st.just(0), st.just(0), st.integers(min_value=0, max_value=5))
COMMANDS = st.lists(st.tuples(KIND, PARAMS), min_size=10, max_size=40)


def _allowed_kinds(case: pb.Case) -> list[str]:
    kinds = [kind for kind in STEP_KINDS if case.status in lifecycle._FROM.get(kind, ())]
    if lifecycle.is_open(case):
        kinds += list(ALARMS)
    return kinds


def _resolve(deadline: Deadline, case: pb.Case, at: dt.datetime) -> Any | None:
    if deadline is None:
        return None
    anchor, minutes = deadline
    base = {"start": utc(case.clock_start), "deadline": utc(case.deadline), "now": at}[anchor]
    return ts(base + dt.timedelta(minutes=minutes))


def _payload(kind: str, p: dict[str, Any], case: pb.Case, at: dt.datetime) -> Message:
    """The payload of ``kind`` made of the command's parameters (valid or not)."""

    def with_deadline(message: Message, field: str, spec: Deadline) -> Message:
        stamp = _resolve(spec, case, at)
        if stamp is not None:
            getattr(message, field).CopyFrom(stamp)
        return message

    if kind == "triaged":
        step = pb.Triaged(category=p["category"], response_class=p["response_class"])
        return with_deadline(step, "deadline", p["triage_deadline"])
    if kind == "assigned":
        slip = pb.AssignmentSlip(department=p["department"], requirement=p["requirement"])
        return pb.Assigned(slip=with_deadline(slip, "deadline", p["slip_deadline"]))  # type: ignore[arg-type]
    if kind == "acknowledged":
        return pb.Acknowledged(department=p["department"])
    if kind == "returned":
        return pb.Returned(reason=p["reason"])
    if kind == "extension_requested":
        return with_deadline(pb.ExtensionRequested(reason=p["reason"]), "new_deadline", p["new_deadline"])
    if kind == "extension_decided":
        return pb.ExtensionDecided(granted=p["granted"], reason=p["reason"])
    if kind == "started":
        return pb.Started(note=p["note"])
    if kind == "progress":
        return pb.Progress(note=p["note"])
    if kind == "feedback":
        return pb.FeedbackGiven(slip=pb.FeedbackSlip(result=p["result"], mediation_level=p["slip_level"]))
    if kind == "reviewed":
        return pb.Reviewed(approved=p["approved"], opinion=p["opinion"])
    if kind == "closed":
        return pb.Closed(summary="办结", mediation_level=p["close_level"], resolved_tier=p["resolved_tier"])
    if kind == "follow_up":
        return pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=p["satisfaction"], method="电话回访"))
    if kind == "reopened":
        return with_deadline(pb.Reopened(reason=p["reason"]), "deadline", p["reopen_deadline"])
    if kind == "archived":
        return pb.Archived(note=p["note"])
    if kind == "deadline_warning":
        return with_deadline(pb.DeadlineWarning(), "deadline", p["alarm_deadline"])
    if kind == "supervision":
        return with_deadline(pb.Supervision(to_node=p["to_node"]), "deadline", p["alarm_deadline"])
    raise AssertionError(kind)


def _check_accepted(kind: str, before: pb.Case, after: pb.Case) -> None:
    """What every accepted step must have done, beyond the general invariants."""
    assert after.id == before.id and after.holder_node == before.holder_node
    if kind in ALARMS:
        assert after.status == before.status
        done = after.warned_for if kind == "deadline_warning" else after.supervised_for
        assert done == after.deadline
        assert after.supervisions == before.supervisions + (kind == "supervision")
    if kind == "closed":
        assert after.status == pb.CASE_STATUS_CLOSED and after.HasField("closed_at")
    if kind == "reopened":
        assert 1 <= before.evaluation.satisfaction <= lifecycle.UNSATISFIED_MAX
    if kind == "archived":
        assert after.evaluation.satisfaction > lifecycle.UNSATISFIED_MAX
    if after.deadline != before.deadline:  # a new deadline owes its alarms afresh
        assert not after.HasField("warned_for") and not after.HasField("supervised_for")


@settings(max_examples=200, deadline=None, database=None)
@given(commands=COMMANDS)
def test_random_step_sequences_keep_the_case_consistent(commands: list[tuple[str | int, dict[str, Any]]]) -> None:
    first = received_event()
    case = apply(None, first)
    accepted = [first]
    for n, (chosen, params) in enumerate(commands, start=1):
        if isinstance(chosen, int):
            forward = FORWARD.get(case.status)
            allowed = sorted(
                (kind for kind in _allowed_kinds(case) if kind not in ALARMS), key=lambda kind: kind != forward
            )
            if not allowed:  # archived: nothing is allowed any more
                continue
            kind = allowed[chosen % len(allowed)]
        else:
            kind = chosen
        at = T0 + dt.timedelta(minutes=n)
        step = make_event(kind, _payload(kind, params, case, at), case_id=case.id, seq=case.version + 1, at=at)
        before = snapshot(case)
        assert before is not None
        try:
            new = apply(case, step)
        except (IllegalTransition, InvalidArgument) as refused:
            note(f"refused {kind}: {refused.message}")
            assert case == before
            continue
        assert case == before  # apply never touches its input
        note(f"accepted {kind} -> {lifecycle.STATUS_LABELS[new.status]}")
        _check_accepted(kind, before, new)
        accepted.append(step)
        case = new
        if kind in ("returned", "extension_decided", "reopened", "supervision"):
            event(f"took {kind}")
        assert invariant_violations(case) == []
        assert case.version == len(accepted)
        assert fold(accepted) == case
    event(f"reached {lifecycle.STATUS_LABELS[case.status]}")
    event(f"accepted {min(len(accepted) // 10 * 10, 30)}+ events")


def _valid_steps(case: pb.Case) -> list[str]:
    """The steps a careful operator could take now, and apply must accept."""
    kinds = []
    for kind in _allowed_kinds(case):
        if kind == "extension_requested" and case.HasField("pending_extension"):
            continue
        if kind == "extension_decided" and not case.HasField("pending_extension"):
            continue
        if kind == "reopened" and case.evaluation.satisfaction > lifecycle.UNSATISFIED_MAX:
            continue
        if kind == "archived" and case.evaluation.satisfaction <= lifecycle.UNSATISFIED_MAX:
            continue
        if kind == "deadline_warning" and case.warned_for == case.deadline:
            continue
        if kind == "supervision" and case.supervised_for == case.deadline:
            continue
        kinds.append(kind)
    return kinds


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_valid_steps_chosen_by_status_are_always_accepted_and_reach_the_archive(data: st.DataObject) -> None:
    first = received_event()
    case = apply(None, first)
    events = [first]
    for n in range(1, 61):
        choices = _valid_steps(case)
        if not choices:
            break
        # The step forward weighs three times a detour (return, extension, alarm, rework, reopening).
        forward = [FORWARD[case.status]] * 2 if FORWARD.get(case.status) in choices else []
        kind = data.draw(st.sampled_from(choices + forward), label=f"step {n}")
        at = T0 + dt.timedelta(minutes=n)
        payload = valid_payload(kind, case)
        if kind == "reviewed":
            approved = data.draw(st.booleans(), label="approved")
            payload = pb.Reviewed(approved=approved, opinion="" if approved else "缺少签字")
        elif kind == "follow_up":
            satisfaction = data.draw(st.integers(min_value=1, max_value=5), label="satisfaction")
            payload = pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=satisfaction))
        elif kind == "extension_decided":
            granted = data.draw(st.booleans(), label="granted")
            payload = pb.ExtensionDecided(granted=granted, reason="" if granted else "时限内可办结")
        elif kind == "reopened":
            payload = pb.Reopened(reason="回访不满意", deadline=ts(at + dt.timedelta(hours=24)))
        step = make_event(kind, payload, case_id=case.id, seq=case.version + 1, at=at)
        case = apply(case, step)  # must not raise
        events.append(step)
        assert invariant_violations(case) == []
        assert case.version == len(events)
        if case.status == pb.CASE_STATUS_ARCHIVED:
            break
    assert fold(events) == case
    event(f"ended {lifecycle.STATUS_LABELS[case.status]}")
    if case.status == pb.CASE_STATUS_ARCHIVED:
        assert case.evaluation.satisfaction > lifecycle.UNSATISFIED_MAX
        assert case.HasField("feedback") and case.review_approved and case.resolved_tier
