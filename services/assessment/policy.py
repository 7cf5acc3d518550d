"""The risk level of a gate's assessment (社会稳定风险等级), from a county's rule file.

Rules: ``deploy/policy/assessment.yaml`` documents them. Everything is pure but
``load_policy`` and ``PolicyFile``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fengqiao.errors import InvalidArgument
from fengqiao.rulefile import ReloadingFile, read_yaml
from fengqiao.v1 import assessment_pb2 as pb

LEVELS = ("low", "medium", "high")
LEVEL_LABELS = {"low": "低风险", "medium": "中风险", "high": "高风险"}
DIMENSIONS = {"legality": "合法性", "reasonableness": "合理性", "feasibility": "可行性", "controllability": "可控性"}


@dataclasses.dataclass(frozen=True)
class RiskPolicy:
    """Thresholds of the three signals; see the rule file for their meaning."""

    name: str = "默认社会稳定风险等级规则"
    min_respondents: int = 30
    point_high_at: int = 15
    point_medium_at: int = 8
    dimension_high_below: int = 60
    dimension_medium_below: int = 75
    support_high_below: float = 0.6
    support_medium_below: float = 0.8


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The level an assessment gets and why (Chinese, for operators)."""

    level: str
    reasons: tuple[str, ...]


def _higher(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


def validate(assessment: pb.GateAssessment, policy: RiskPolicy) -> None:
    """Refuse an incomplete assessment: scores, survey, risk points and measures must be filled in."""
    if not assessment.HasField("dimensions"):
        raise InvalidArgument("dimensions", "须对合法性、合理性、可行性、可控性逐项评分")
    for field, label in DIMENSIONS.items():
        score = getattr(assessment.dimensions, field)
        if not 0 <= score <= 100:
            raise InvalidArgument(f"dimensions.{field}", f"{label}评分须在 0–100 之间")
    survey = assessment.survey
    if survey.respondents < policy.min_respondents:
        raise InvalidArgument("survey.respondents", f"民意调查样本不足：至少 {policy.min_respondents} 人")
    if not 0 <= survey.supporters <= survey.respondents:
        raise InvalidArgument("survey.supporters", "支持人数须在 0 与受访人数之间")
    for i, point in enumerate(assessment.risk_points):
        if not point.description.strip():
            raise InvalidArgument(f"risk_points[{i}].description", "须说明风险点")
        for name, label in (("likelihood", "可能性"), ("impact", "影响程度")):
            if not 1 <= getattr(point, name) <= 5:
                raise InvalidArgument(f"risk_points[{i}].{name}", f"{label}须为 1–5")
    for i, measure in enumerate(assessment.measures):
        if not measure.description.strip():
            raise InvalidArgument(f"measures[{i}].description", "须说明化解措施")
        if not measure.responsible_unit.strip():
            raise InvalidArgument(f"measures[{i}].responsible_unit", "须明确责任单位")
        if not measure.HasField("deadline"):
            raise InvalidArgument(f"measures[{i}].deadline", "须明确完成时限")


def risk_level(assessment: pb.GateAssessment, policy: RiskPolicy) -> Verdict:
    """The highest level the risk points, the four dimensions and the survey give.

    A medium level needs at least one mitigation measure; ``validate`` first.
    """
    level, reasons = "low", []
    worst = max((p.likelihood * p.impact for p in assessment.risk_points), default=0)
    point = "high" if worst >= policy.point_high_at else "medium" if worst >= policy.point_medium_at else "low"
    if point != "low":
        reasons.append(f"最高风险点评分 {worst}（可能性×影响程度），达{LEVEL_LABELS[point]}")
        level = _higher(level, point)
    for field, label in DIMENSIONS.items():
        score = getattr(assessment.dimensions, field)
        dim = (
            "high"
            if score < policy.dimension_high_below
            else "medium"
            if score < policy.dimension_medium_below
            else "low"
        )
        if dim != "low":
            reasons.append(f"{label}评分 {score}，达{LEVEL_LABELS[dim]}")
            level = _higher(level, dim)
    rate = assessment.survey.supporters / assessment.survey.respondents
    support = "high" if rate < policy.support_high_below else "medium" if rate < policy.support_medium_below else "low"
    if support != "low":
        reasons.append(f"群众支持率 {rate:.0%}，达{LEVEL_LABELS[support]}")
        level = _higher(level, support)
    if not reasons:
        reasons.append("各项评分、支持率与风险点均在低风险范围内")
    if level == "medium" and not assessment.measures:
        raise InvalidArgument("measures", "中风险须制定化解措施（明确责任单位和完成时限）后方可通过")
    return Verdict(level, tuple(reasons))


_SECTIONS = {
    "risk_point": {"high_at": "point_high_at", "medium_at": "point_medium_at"},
    "dimensions": {"high_below": "dimension_high_below", "medium_below": "dimension_medium_below"},
    "support_rate": {"high_below": "support_high_below", "medium_below": "support_medium_below"},
}


def policy_from_dict(raw: Any) -> RiskPolicy:
    """Validate a parsed rule file; an error names the field."""
    if not isinstance(raw, dict):
        raise InvalidArgument("policy", "规则文件须为映射")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "name":
            values["name"] = str(value)
        elif key == "min_respondents":
            if type(value) is not int or value < 1:
                raise InvalidArgument(key, "须为正整数")
            values[key] = value
        elif key in _SECTIONS and isinstance(value, dict):
            for sub, number in value.items():
                if sub not in _SECTIONS[key] or isinstance(number, bool) or not isinstance(number, int | float):
                    raise InvalidArgument(f"{key}.{sub}", "未知字段或不是数值")
                values[_SECTIONS[key][sub]] = number
        else:
            raise InvalidArgument(str(key), f"规则文件中有未知或格式错误的字段“{key}”")
    policy = RiskPolicy(**values)
    pairs = (
        ("risk_point", policy.point_high_at >= policy.point_medium_at),
        ("dimensions", policy.dimension_high_below <= policy.dimension_medium_below),
        ("support_rate", policy.support_high_below <= policy.support_medium_below),
    )
    for section, ordered in pairs:
        if not ordered:
            raise InvalidArgument(section, "高风险阈值须比中风险阈值更严")
    return policy


def load_policy(path: Path) -> RiskPolicy:
    """Read and validate a risk rule file."""
    return policy_from_dict(read_yaml(path, field="policy_file"))


class PolicyFile(ReloadingFile[RiskPolicy]):
    """The county's risk rule file, reloaded when it changes; never broken."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, load_policy, what="risk rule")
