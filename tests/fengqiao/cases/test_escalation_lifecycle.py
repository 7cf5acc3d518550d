"""上报 in the fold: one tier at a time, accepted or refused only by the center asked, one holder."""

from __future__ import annotations

import datetime as dt

import pytest

from fengqiao.cases.lifecycle import apply, invariant_violations
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import case_pb2 as pb
from tests.fengqiao.cases.test_lifecycle import TOWN, VILLAGE, Story, make_event, snapshot, ts

COUNTY = "371702"


def escalate(story: Story, reason: str = "征地拆迁纠纷由乡镇处理") -> pb.Case:
    return story.step(
        "escalation_requested",
        pb.EscalationRequested(to_node=TOWN, reason=reason, rule_id="land-to-town", rule_name="征地拆迁由乡镇处理"),
    )


def by(story: Story, node: str, kind: str, payload: object) -> pb.CaseEvent:
    event = story.next_event(kind, payload)  # type: ignore[arg-type]
    event.node = node
    return event


def test_village_escalates_to_its_town_and_the_town_becomes_holder_on_acceptance() -> None:
    story = Story()
    story.run("triaged")
    case = escalate(story)
    assert case.status == pb.CASE_STATUS_ESCALATING and case.escalation_to == TOWN
    assert case.holder_node == VILLAGE and case.decided_rule == "land-to-town"
    accepted = by(
        story, TOWN, "escalation_accepted", pb.EscalationAccepted(deadline=ts(story.at + dt.timedelta(days=1)))
    )
    case = apply(case, accepted)
    assert case.holder_node == TOWN and case.status == pb.CASE_STATUS_RECEIVED
    assert case.escalations == 1 and not case.escalation_to and invariant_violations(case) == []


def test_a_refused_escalation_returns_the_case_to_the_sender_as_it_was() -> None:
    story = Story()
    story.run("triaged", "assigned")
    case = escalate(story)
    refused = by(story, TOWN, "escalation_refused", pb.EscalationRefused(reason="属村内邻里纠纷，请村里调解"))
    case = apply(case, refused)
    assert case.holder_node == VILLAGE and case.status == pb.CASE_STATUS_ASSIGNED and not case.escalation_to


def test_escalation_goes_one_tier_at_a_time_and_needs_a_reason() -> None:
    story = Story()
    story.run("triaged")
    skip = pb.EscalationRequested(to_node=COUNTY, reason="跨镇纠纷")
    assert "上一级" in story.refuse("escalation_requested", skip).message  # type: ignore[attr-defined]
    story.refuse("escalation_requested", pb.EscalationRequested(to_node=TOWN, reason=""), InvalidArgument)


def test_only_the_center_asked_may_accept_and_only_while_escalating() -> None:
    story = Story()
    story.run("triaged")
    case = escalate(story)
    before = snapshot(case)
    deadline = ts(story.at + dt.timedelta(days=1))
    for node in (VILLAGE, "371702102", COUNTY):
        with pytest.raises(IllegalTransition):
            apply(case, by(story, node, "escalation_accepted", pb.EscalationAccepted(deadline=deadline)))
    assert case == before
    case = apply(case, by(story, TOWN, "escalation_accepted", pb.EscalationAccepted(deadline=deadline)))
    story.case = case
    with pytest.raises(IllegalTransition):  # accepted once: there is exactly one holder
        apply(case, by(story, TOWN, "escalation_accepted", pb.EscalationAccepted(deadline=deadline)))


def test_while_escalating_the_sender_can_neither_advance_nor_raise_alarms() -> None:
    story = Story()
    story.run("triaged")
    escalate(story)
    story.refuse("assigned", pb.Assigned(slip=pb.AssignmentSlip(department="司法所", requirement="调解")))
    story.refuse("deadline_warning", pb.DeadlineWarning(deadline=story.case.deadline))
    story.refuse("supervision", pb.Supervision(deadline=story.case.deadline, to_node=TOWN))


def test_after_acceptance_only_the_new_holder_may_advance() -> None:
    story = Story()
    story.run("triaged")
    escalate(story)
    story.case = apply(
        story.case,
        by(story, TOWN, "escalation_accepted", pb.EscalationAccepted(deadline=ts(story.at + dt.timedelta(days=1)))),
    )
    triage = pb.Triaged(category="征地拆迁", response_class=pb.RESPONSE_CLASS_ROUTINE, deadline=story.case.deadline)
    story.refuse("triaged", triage)  # written by the village: refused
    case = apply(story.case, by(story, TOWN, "triaged", triage))
    assert case.status == pb.CASE_STATUS_TRIAGED and case.holder_node == TOWN


def test_the_county_cannot_escalate() -> None:
    story = Story()
    story.case.holder_node = COUNTY
    event = make_event(
        "escalation_requested",
        pb.EscalationRequested(to_node="37", reason="x"),
        case_id=story.case.id,
        seq=2,
        at=story.at + dt.timedelta(minutes=5),
    )
    event.node = COUNTY
    with pytest.raises(IllegalTransition, match="县级"):
        apply(story.case, event)
