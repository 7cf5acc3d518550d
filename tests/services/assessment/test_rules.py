"""The four gates (立项, 决策, 实施, 验收) as a pure state machine, driven through its own fold."""

from __future__ import annotations

import itertools

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.errors import IllegalTransition, InvalidArgument, NotFound
from fengqiao.v1 import assessment_pb2 as pb
from services.assessment import rules
from services.assessment.policy import RiskPolicy, risk_level
from tests.services.assessment.test_policy import assessment

TOWN = "371702101"
RULE = RiskPolicy()
LOW = {"supporters": 95}
MEDIUM = {"supporters": 70, "measures": 1}
HIGH = {"points": ((4, 4),)}


class Project:
    """A project folded from events the way the registering center writes them."""

    def __init__(self) -> None:
        self._ids = (f"id-{n}" for n in itertools.count())
        self.state = self._apply(None, registered=pb.ProjectRegistered(name="产业园区", kind="产业园区"))

    def _apply(self, state: pb.Project | None, **payload: object) -> pb.Project:
        seq = 1 if state is None else state.version + 1
        event = pb.ProjectEvent(
            id=next(self._ids), project_id="p1", seq=seq, node=TOWN, actor="镇值班员",
            at=Timestamp(seconds=1_790_000_000 + seq), **payload,  # type: ignore[arg-type]
        )  # fmt: skip
        return rules.fold(state, event)

    def assess(self, stage: str, **shape: object) -> pb.Project:
        rules.check_assess(self.state, stage)
        filed = assessment(**shape)  # type: ignore[arg-type]
        recorded = rules.prepare_assessment(self.state, stage, filed, risk_level(filed, RULE), lambda: next(self._ids))
        self.state = self._apply(self.state, assessed=pb.GateAssessed(stage=stage, assessment=recorded))
        return self.state

    def pass_gate(self, stage: str) -> pb.Project:
        rules.check_pass(self.state, stage)
        self.state = self._apply(self.state, gate_passed=pb.GatePassed(stage=stage))
        return self.state

    def complete(self, measure_id: str) -> pb.Project:
        rules.check_complete_measure(self.state, measure_id)
        completed = pb.MeasureCompleted(measure_id=measure_id, note="已完成")
        self.state = self._apply(self.state, measure_completed=completed)
        return self.state

    def resolve(self, hazard_id: str) -> pb.Project:
        rules.check_resolve_hazard(self.state, hazard_id, "已签订补偿协议")
        self.state = self._apply(
            self.state, hazard_resolved=pb.HazardResolved(hazard_id=hazard_id, resolution="已化解")
        )
        return self.state


def test_a_registered_project_starts_at_the_first_gate_with_every_gate_pending() -> None:
    state = Project().state
    assert state.stage == "立项" and state.status == "active" and state.version == 1
    assert [(g.stage, g.status) for g in state.gates] == [(s, "pending") for s in rules.STAGES]


def test_skipping_a_gate_is_refused_for_assessing_and_for_passing() -> None:
    project = Project()
    with pytest.raises(IllegalTransition, match="不能跳过“立项”环节"):
        project.assess("决策", **LOW)
    with pytest.raises(IllegalTransition, match="不能跳过“立项”环节"):
        project.pass_gate("实施")


def test_a_gate_cannot_pass_without_a_completed_assessment() -> None:
    with pytest.raises(IllegalTransition, match="尚未完成稳定风险评估"):
        Project().pass_gate("立项")


def test_low_risk_passes_and_the_project_moves_to_the_next_gate() -> None:
    project = Project()
    assert project.assess("立项", **LOW).gates[0].status == "assessed"
    state = project.pass_gate("立项")
    assert state.stage == "决策" and state.gates[0].status == "passed" and state.gates[0].level == "low"
    with pytest.raises(IllegalTransition, match="“立项”环节已通过"):
        project.assess("立项", **LOW)


def test_high_risk_blocks_the_gate_and_suspends_the_project() -> None:
    project = Project()
    state = project.assess("立项", **HIGH)
    assert state.status == "suspended" and state.gates[0].status == "blocked" and state.gates[0].level == "high"
    with pytest.raises(IllegalTransition, match="高风险，项目已暂停"):
        project.pass_gate("立项")


def test_medium_risk_passes_with_its_measures_tracked_until_completed() -> None:
    project = Project()
    project.assess("立项", **MEDIUM)
    state = project.pass_gate("立项")
    assert state.stage == "决策" and state.status == "active"
    [measure] = state.measures
    assert measure.stage == "立项" and measure.responsible_unit == "镇司法所" and not measure.completed
    state = project.complete(measure.id)
    assert state.measures[0].completed and state.measures[0].completed_by == "镇值班员"
    with pytest.raises(IllegalTransition, match="已完成"):
        project.complete(measure.id)
    with pytest.raises(NotFound):
        project.complete("no-such-measure")


def test_reassessment_after_mitigation_unblocks_the_gate() -> None:
    project = Project()
    blocked = project.assess("立项", points=((4, 4),), measures=1)
    hazard = blocked.hazards[0]
    project.complete(blocked.measures[0].id)
    project.resolve(hazard.id)
    state = project.assess("立项", **LOW)
    assert state.status == "active" and state.gates[0].status == "assessed" and state.gates[0].assessments == 2
    assert project.pass_gate("立项").stage == "决策"


def test_every_risk_point_becomes_a_hazard_tracked_until_resolved() -> None:
    project = Project()
    project.assess("立项", points=(), supporters=95)
    project.pass_gate("立项")
    state = project.assess("决策", points=((2, 3), (1, 2)), supporters=70, measures=1)
    assert [(h.stage, h.description, h.resolved) for h in state.hazards] == [
        ("决策", "风险0", False),
        ("决策", "风险1", False),
    ]
    assert [p.hazard_id for p in state.gates[1].latest.risk_points] == [h.id for h in state.hazards]
    open_at_decision = list(state.hazards)
    state = project.resolve(open_at_decision[0].id)
    resolved = next(h for h in state.hazards if h.id == open_at_decision[0].id)
    assert resolved.resolved and resolved.resolution == "已化解" and resolved.resolved_by == "镇值班员"
    with pytest.raises(IllegalTransition, match="已销号"):
        project.resolve(resolved.id)


def test_a_reassessment_naming_an_open_hazard_again_does_not_count_it_twice() -> None:
    project = Project()
    project.assess("立项", **HIGH)
    state = project.assess("立项", **HIGH)
    assert len(state.hazards) == 1 and state.gates[0].assessments == 2


def test_passing_the_acceptance_gate_completes_the_project() -> None:
    project = Project()
    for stage in rules.STAGES:
        project.assess(stage, **LOW)
        project.pass_gate(stage)
    assert project.state.status == "completed"
    with pytest.raises(IllegalTransition, match="已通过全部四个环节"):
        project.assess("验收", **LOW)


def test_only_the_registering_center_advances_a_project() -> None:
    rules.check_holder(Project().state, TOWN)
    with pytest.raises(IllegalTransition, match="只能由该中心办理"):
        rules.check_holder(Project().state, "371702")


def test_a_project_is_registered_at_a_town_or_county_for_villages_of_its_area() -> None:
    request = pb.RegisterProjectRequest(name="征地", kind="征地", villages=[f"{TOWN}001"], people_affected=120)
    rules.validate_registration(request, node_code=TOWN)
    with pytest.raises(IllegalTransition, match="村级综治站不能登记"):
        rules.validate_registration(request, node_code=f"{TOWN}001")
    elsewhere = pb.RegisterProjectRequest(name="征地", kind="征地", villages=["371702102001"], people_affected=1)
    with pytest.raises(InvalidArgument, match=r"villages\[0\]"):
        rules.validate_registration(elsewhere, node_code=TOWN)
    with pytest.raises(InvalidArgument, match="kind"):
        rules.validate_registration(pb.RegisterProjectRequest(name="x", kind="修路"), node_code=TOWN)
