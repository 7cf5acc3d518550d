"""The risk level rule (社会稳定风险等级): the highest of risk points, dimensions and survey."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.errors import InvalidArgument
from fengqiao.v1 import assessment_pb2 as pb
from services.assessment.config import AssessmentSettings
from services.assessment.policy import PolicyFile, RiskPolicy, policy_from_dict, risk_level, validate

RULE = RiskPolicy()


def assessment(
    *,
    scores: tuple[int, int, int, int] = (90, 90, 90, 90),
    respondents: int = 100,
    supporters: int = 95,
    points: tuple[tuple[int, int], ...] = ((1, 2),),
    measures: int = 0,
) -> pb.GateAssessment:
    deadline = Timestamp(seconds=1_800_000_000)
    return pb.GateAssessment(
        dimensions=pb.Dimensions(
            legality=scores[0], reasonableness=scores[1], feasibility=scores[2], controllability=scores[3]
        ),
        survey=pb.Survey(respondents=respondents, supporters=supporters),
        risk_points=[pb.RiskPoint(description=f"风险{i}", likelihood=a, impact=b) for i, (a, b) in enumerate(points)],
        measures=[
            pb.Measure(description=f"措施{i}", responsible_unit="镇司法所", deadline=deadline) for i in range(measures)
        ],
    )


def test_a_well_supported_project_with_small_risks_is_low_risk() -> None:
    verdict = risk_level(assessment(), RULE)
    assert verdict.level == "low" and verdict.reasons == ("各项评分、支持率与风险点均在低风险范围内",)


def test_support_between_60_and_80_percent_is_medium_risk_and_names_the_rate() -> None:
    verdict = risk_level(assessment(supporters=70, measures=1), RULE)
    assert verdict.level == "medium" and verdict.reasons == ("群众支持率 70%，达中风险",)


def test_a_likely_and_severe_risk_point_is_high_risk_whatever_the_support() -> None:
    verdict = risk_level(assessment(points=((4, 4), (1, 1))), RULE)
    assert verdict.level == "high" and "最高风险点评分 16" in verdict.reasons[0]


def test_doubtful_legality_is_high_risk() -> None:
    verdict = risk_level(assessment(scores=(50, 90, 90, 90)), RULE)
    assert verdict.level == "high" and verdict.reasons == ("合法性评分 50，达高风险",)


def test_the_level_is_the_highest_signal_and_every_signal_is_a_reason() -> None:
    verdict = risk_level(assessment(scores=(70, 90, 90, 90), supporters=50, points=((2, 4),), measures=1), RULE)
    assert verdict.level == "high" and len(verdict.reasons) == 3


def test_medium_risk_without_mitigation_measures_is_not_a_completed_assessment() -> None:
    with pytest.raises(InvalidArgument, match="中风险须制定化解措施"):
        risk_level(assessment(supporters=70), RULE)


def test_a_survey_with_too_few_respondents_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="样本不足"):
        validate(assessment(respondents=10, supporters=10), RULE)


def test_a_measure_needs_a_responsible_unit_and_a_deadline() -> None:
    incomplete = assessment(measures=1)
    incomplete.measures[0].responsible_unit = ""
    with pytest.raises(InvalidArgument, match="责任单位"):
        validate(incomplete, RULE)
    incomplete.measures[0].responsible_unit = "镇司法所"
    incomplete.measures[0].ClearField("deadline")
    with pytest.raises(InvalidArgument, match="完成时限"):
        validate(incomplete, RULE)


def test_scores_out_of_range_are_refused_by_field() -> None:
    with pytest.raises(InvalidArgument, match=r"dimensions\.feasibility"):
        validate(assessment(scores=(90, 90, 101, 90)), RULE)
    with pytest.raises(InvalidArgument, match=r"risk_points\[0\]\.impact"):
        validate(assessment(points=((1, 6),)), RULE)


def test_the_shipped_rule_file_is_the_documented_default() -> None:
    assert PolicyFile(AssessmentSettings().policy_file).current() == RULE


def test_a_stricter_county_rule_changes_the_level(tmp_path: Path) -> None:
    path = tmp_path / "assessment.yaml"
    path.write_text(yaml.safe_dump({"support_rate": {"high_below": 0.8, "medium_below": 0.9}}), encoding="utf-8")
    rule = PolicyFile(path).current()
    assert risk_level(assessment(supporters=75), rule).level == "high"
    assert risk_level(assessment(supporters=75, measures=1), RULE).level == "medium"


def test_a_rule_file_with_an_unknown_field_or_inverted_thresholds_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"dimensions\.lowest"):
        policy_from_dict({"dimensions": {"lowest": 3}})
    with pytest.raises(InvalidArgument, match="高风险阈值须比中风险阈值更严"):
        policy_from_dict({"risk_point": {"high_at": 5, "medium_at": 10}})


def test_a_broken_edit_of_the_rule_file_keeps_the_previous_rule(tmp_path: Path) -> None:
    path = tmp_path / "assessment.yaml"
    path.write_text("min_respondents: 50\n", encoding="utf-8")
    rules = PolicyFile(path)
    path.write_text("min_respondents: [oops\n", encoding="utf-8")
    assert rules.current().min_respondents == 50
