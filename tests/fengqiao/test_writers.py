"""Who may write what: the pure table every received message is checked against."""

from __future__ import annotations

import pytest

from fengqiao import writers
from fengqiao.cases import lifecycle
from fengqiao.errors import IllegalTransition
from fengqiao.v1 import assessment_pb2, case_pb2, routing_pb2
from fengqiao.writers import Writer

COUNTY, TOWN, VILLAGE, SIBLING = "371702", "371702101", "371702101001", "371702101002"
HELD = case_pb2.Case(id="c1", holder_node=VILLAGE, version=3)
ESCALATING = case_pb2.Case(id="c1", holder_node=VILLAGE, escalation_to=TOWN, version=4)


def refused(kind: str, event_type: str, author: str, owners: writers.Owners | None) -> str | None:
    return writers.overreach("事件", kind, event_type, author=author, owners=owners)


@pytest.mark.parametrize(
    ("kind", "event_type", "writer"),
    [
        ("case", "received", Writer.OPENER),
        ("case", "triaged", Writer.HOLDER),
        ("case", "supervision", Writer.HOLDER),
        ("case", "escalation_requested", Writer.HOLDER),
        ("case", "escalation_accepted", Writer.ADDRESSED),
        ("case", "escalation_refused", Writer.ADDRESSED),
        ("directive", "issued", Writer.OPENER),
        ("directive", "acknowledged", Writer.RECEIVER),
        ("directive", "completed", Writer.RECEIVER),
        ("joint", "opened", Writer.OPENER),
        ("joint", "note", Writer.PARTICIPANT),
        ("joint", "signed_off", Writer.PARTICIPANT),
        ("alert", "acknowledged", Writer.ADDRESSEE),
        ("project", "registered", Writer.OPENER),
        ("project", "assessed", Writer.CENTER),
        ("project", "gate_passed", Writer.CENTER),
    ],
)
def test_each_event_type_names_its_writer(kind: str, event_type: str, writer: Writer) -> None:
    assert writers.writer_of(kind, event_type) is writer


def test_a_case_step_is_the_holders_and_an_escalation_answer_the_addressed_centers() -> None:
    assert refused("case", "triaged", VILLAGE, writers.case_owners(HELD)) is None
    reason = refused("case", "triaged", SIBLING, writers.case_owners(HELD))
    assert reason == f"伪造或越权：事件（triaged）由 {SIBLING} 发出，只有承办中心 {VILLAGE} 可以写入"
    assert refused("case", "escalation_requested", TOWN, writers.case_owners(HELD)) is not None
    assert refused("case", "escalation_accepted", TOWN, writers.case_owners(ESCALATING)) is None
    for author in (VILLAGE, SIBLING, COUNTY):
        assert refused("case", "escalation_accepted", author, writers.case_owners(ESCALATING)) is not None
    # no escalation pending: nobody may accept one
    assert "（无）" in (refused("case", "escalation_accepted", TOWN, writers.case_owners(HELD)) or "")


def test_answers_are_the_receivers_joint_events_the_participants_projects_the_centers() -> None:
    directive = routing_pb2.Directive(id="d1", from_node=COUNTY, to_node=VILLAGE)
    assert refused("directive", "acknowledged", VILLAGE, writers.directive_owners(directive)) is None
    assert refused("directive", "completed", SIBLING, writers.directive_owners(directive)) is not None
    assert refused("directive", "completed", COUNTY, writers.directive_owners(directive)) is not None
    joint = routing_pb2.JointCase(participants=[routing_pb2.JointParticipant(node=TOWN)])
    assert refused("joint", "note", TOWN, writers.joint_owners(joint)) is None
    assert refused("joint", "note", "371702102", writers.joint_owners(joint)) is not None
    alert = routing_pb2.RiskAlert(from_node=TOWN, to_nodes=["371702102"])
    assert refused("alert", "acknowledged", "371702102", writers.alert_owners(alert)) is None
    assert refused("alert", "acknowledged", TOWN, writers.alert_owners(alert)) is not None
    project = assessment_pb2.Project(id="p1", node=TOWN)
    assert refused("project", "assessed", TOWN, writers.project_owners(project)) is None
    assert refused("project", "gate_passed", COUNTY, writers.project_owners(project)) is not None


def test_a_first_event_or_an_aggregate_unknown_here_is_left_to_the_fold() -> None:
    assert refused("case", "received", SIBLING, None) is None
    assert refused("case", "received", SIBLING, writers.case_owners(HELD)) is None  # the fold refuses a second
    assert refused("joint", "note", TOWN, None) is None
    assert writers.writer_of("feed", "provincial") is None and refused("feed", "provincial", TOWN, {}) is None


def test_the_author_must_be_the_sender() -> None:
    assert writers.misattributed("案件事件", claimed=VILLAGE, sender=VILLAGE) is None
    reason = writers.misattributed("案件事件", claimed=SIBLING, sender=VILLAGE)
    assert reason == f"伪造或越权：案件事件自称由 {SIBLING} 发出，实际发送中心为 {VILLAGE}"


def test_the_case_fold_refuses_a_writer_by_the_same_table() -> None:
    step = case_pb2.CaseEvent(id="e5", case_id="c1", seq=5, node=SIBLING)
    step.escalation_accepted.SetInParent()
    with pytest.raises(IllegalTransition, match=f"节点 {SIBLING} 不能接收上报"):
        lifecycle.apply(ESCALATING, step)
