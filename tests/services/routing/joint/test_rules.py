"""The fold of a 三联 joint case's timeline and of a 联防 alert, called directly."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import routing_pb2 as pb
from services.routing.joint import rules

COUNTY, A, B, D = "371702", "371702101", "371702102", "371702104"
START = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


def event(node: str, lamport: int, **payload: object) -> pb.JointEvent:
    made = pb.JointEvent(id=f"e{next(_ids):03d}", joint_case_id="j1", node=node, actor="值班员", lamport=lamport)
    made.at.FromDatetime(START + dt.timedelta(minutes=lamport))
    for name, value in payload.items():
        if isinstance(value, str):
            setattr(made, name, value)
        else:
            getattr(made, name).CopyFrom(value)
    return made


def opened(*invited: str) -> pb.JointEvent:
    return event(A, 1, opened=pb.JointOpened(title="两镇交界山林权属纠纷", category="山林土地", invited=invited))


def answer(node: str, lamport: int, accept: bool, reason: str = "") -> pb.JointEvent:
    return event(node, lamport, answered=pb.JointAnswer(accept=accept, reason=reason))


def fold(*events: pb.JointEvent) -> pb.JointCase:
    case, _ = rules.fold_timeline(events, county=COUNTY)
    assert case is not None
    return case


def test_the_case_closes_only_when_every_accepted_participant_signed_off() -> None:
    base = [opened(B, D), answer(B, 2, True), answer(D, 2, False, "不涉及本镇")]
    half = fold(*base, event(A, 3, signed_off="同意"))
    assert half.status == pb.JOINT_CASE_STATUS_OPEN and half.participants[0].signed_off
    closed = fold(*base, event(A, 3, signed_off="同意"), event(B, 4, signed_off="同意"))
    assert closed.status == pb.JOINT_CASE_STATUS_CLOSED and closed.closed_at.ToDatetime() == dt.datetime(
        2026, 11, 22, 8, 4
    )


def test_signing_off_waits_for_every_answer_and_for_the_towns_own_tasks() -> None:
    with pytest.raises(IllegalTransition, match="未答复"):
        rules.apply_joint(fold(opened(B)), event(A, 2, signed_off=""), county=COUNTY)
    deadline = pb.JointTaskAdded(node=B, title="核实界桩位置")
    deadline.deadline.FromDatetime(START + dt.timedelta(days=3))
    case = fold(opened(B), answer(B, 2, True), event(A, 3, task_added=deadline))
    assert [(t.id, t.node) for t in case.tasks] == [("T1", B)]
    with pytest.raises(IllegalTransition, match="T1"):
        rules.apply_joint(case, event(B, 4, signed_off=""), county=COUNTY)
    with pytest.raises(IllegalTransition, match="只有该乡镇"):
        rules.apply_joint(
            case, event(A, 4, task_completed=pb.JointTaskCompleted(task_id="T1", result="x")), county=COUNTY
        )


def test_a_decline_needs_a_reason_and_all_declining_means_the_case_is_not_formed() -> None:
    with pytest.raises(InvalidArgument, match="理由"):
        rules.apply_joint(fold(opened(B)), answer(B, 2, False), county=COUNTY)
    declined = fold(opened(B), answer(B, 2, False, "已由本镇单独调处"))
    assert declined.status == pb.JOINT_CASE_STATUS_DECLINED
    assert not rules.may_read(declined, B, county=COUNTY) and rules.may_read(declined, COUNTY, county=COUNTY)


def test_invited_towns_may_read_others_may_not() -> None:
    case = fold(opened(B))
    assert rules.may_read(case, B, county=COUNTY) and rules.may_read(case, A, county=COUNTY)
    assert not rules.may_read(case, "371702103", county=COUNTY)
    assert not rules.may_read(case, "371702101001", county=COUNTY)


def test_every_order_of_arrival_folds_to_the_same_case_and_hash() -> None:
    events = [opened(B), answer(B, 2, True), event(A, 3, note="现场勘查"), event(B, 3, note="走访当事人")]
    events += [event(COUNTY, 4, note="县级督导"), event(A, 5, signed_off="")]
    results = set()
    for _ in range(20):
        shuffled = random.sample(events, len(events))
        case, entries = rules.fold_timeline(shuffled, county=COUNTY)
        ordered = [e.event.SerializeToString(deterministic=True) for e in entries]
        results.add((case.SerializeToString(deterministic=True) if case else b"", rules.timeline_hash(ordered)))
    assert len(results) == 1


def test_an_event_after_the_close_stays_in_the_timeline_but_is_not_applied() -> None:
    closing = [opened(B), answer(B, 2, True), event(A, 3, signed_off=""), event(B, 4, signed_off="")]
    before = event(A, 4, note="与乙镇签字同时写入")  # same counter as B's sign-off: A sorts first
    after = event(A, 5, note="办结后才到的记录")
    stranger = event(D, 6, note="不是参与方")
    case, entries = rules.fold_timeline([stranger, after, *closing, before], county=COUNTY)
    assert case is not None and case.status == pb.JOINT_CASE_STATUS_CLOSED
    applied = {e.event.id: (e.applied, e.note) for e in entries}
    assert applied[before.id] == (True, "")
    assert applied[after.id][0] is False and "已办结" in applied[after.id][1]
    assert applied[stranger.id][0] is False
    assert [e.event.id for e in entries][-4:] == [before.id, closing[-1].id, after.id, stranger.id]


def test_invitations_go_only_to_neighbouring_towns() -> None:
    rules.check_invitations(A, [B], [B, D])
    with pytest.raises(InvalidArgument, match="相邻"):
        rules.check_invitations(A, ["371702103"], [B])
    with pytest.raises(InvalidArgument):
        rules.check_invitations(A, [A], [A, B])
    with pytest.raises(IllegalTransition):
        rules.check_invitations(COUNTY, [B], [B])


def test_an_alert_is_acknowledged_once_by_each_addressee() -> None:
    raised = pb.RiskAlertEvent(id="r1", alert_id="a1", node=A, actor="值班员")
    raised.raised.CopyFrom(
        pb.RiskAlert(from_node=A, to_nodes=[B, D], kind="missing_person", title="走失老人", level="high")
    )
    alert = rules.apply_alert(None, raised)
    ack = pb.RiskAlertEvent(id="r2", alert_id="a1", node=B, actor="乙镇", acknowledged="已布控")
    alert = rules.apply_alert(alert, ack)
    assert [a.node for a in alert.acks] == [B] and not alert.fully_acknowledged
    with pytest.raises(IllegalTransition, match="已确认"):
        rules.apply_alert(alert, ack)
    with pytest.raises(IllegalTransition):
        rules.apply_alert(alert, pb.RiskAlertEvent(alert_id="a1", node="371702103", acknowledged=""))
    alert = rules.apply_alert(alert, pb.RiskAlertEvent(alert_id="a1", node=D, actor="丁镇", acknowledged=""))
    assert alert.fully_acknowledged
    with pytest.raises(InvalidArgument, match="预警类型"):
        bad = pb.RiskAlertEvent(alert_id="a2", node=A)
        bad.raised.CopyFrom(pb.RiskAlert(from_node=A, to_nodes=[B], kind="rumour", title="x", level="low"))
        rules.apply_alert(None, bad)
