"""Containment policy (小事不出村、大事不出镇) as data: which tier must handle a case, and why.

Rules: a YAML file per county (``deploy/policy/containment.yaml``), naming only the node's categories
(``FQ_CATEGORIES``). All pure but ``load_policy`` and ``PolicyFile``. 信访积案 is the
``repeat_petition`` flag, not a category: it can be about anything.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from fengqiao.divisions import Tier, parent_code, tier_of
from fengqiao.errors import InvalidArgument
from fengqiao.rulefile import ReloadingFile, read_yaml
from fengqiao.v1 import case_pb2

SEVERITIES = ("low", "medium", "high")
TIERS = {"village": Tier.VILLAGE, "town": Tier.TOWN, "county": Tier.COUNTY}
OPERATOR_RULE = "operator"  # rule_id of an operator's 上报 (reserved: no rule may take it)
DEFAULT_RULE = "default"  # rule_id when no rule matches: the case stays
_HEIGHT = {Tier.VILLAGE: 0, Tier.TOWN: 1, Tier.COUNTY: 2}
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class Span(enum.IntEnum):
    """How far apart the parties live: one place, different villages, different towns."""

    NONE = 0
    VILLAGES = 1
    TOWNS = 2


@dataclasses.dataclass(frozen=True)
class CaseFacts:
    """What the policy looks at; what the Case proto lacks is given by the operator."""

    holder_tier: Tier
    category: str
    people: int = 0
    amount_yuan: int = 0
    severity: str = "low"
    party_village_codes: frozenset[str] = frozenset()
    party_town_codes: frozenset[str] = frozenset()
    failed_mediations: int = 0  # at the current tier
    supervisions: int = 0  # 督办 at the current tier
    repeat_petition: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise InvalidArgument("severity", f"严重程度须为 {'、'.join(SEVERITIES)} 之一")
        for name in ("people", "amount_yuan", "failed_mediations", "supervisions"):
            if getattr(self, name) < 0:
                raise InvalidArgument(name, "不能为负数")

    @property
    def parties_span(self) -> Span:
        if len(self.party_town_codes) > 1:
            return Span.TOWNS
        return Span.VILLAGES if len(self.party_village_codes) > 1 else Span.NONE

    @property
    def overdue(self) -> bool:
        return self.supervisions >= 1


def _one_of(value: Any, options: Iterable[str]) -> str:
    choices = tuple(options)
    if value not in choices:
        raise ValueError(f"“{value}”无效，须为 {'、'.join(choices)} 之一")
    return str(value)


def _listed(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError("须为非空列表")
    return value


def _count(value: Any, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"须为不小于 {minimum} 的整数")
    return value


def _flag(value: Any, _: tuple[str, ...]) -> bool:
    if not isinstance(value, bool):
        raise ValueError("须为 true 或 false")
    return value


# The ``when`` conditions: how each is read from YAML (given the known categories; ValueError
# says what is wrong), and when a case meets it. Thresholds are "at least".
CONDITIONS: dict[str, tuple[Callable[[Any, tuple[str, ...]], Any], Callable[[CaseFacts, Any], bool]]] = {
    "categories": (lambda v, known: frozenset(_one_of(c, known) for c in _listed(v)), lambda f, x: f.category in x),
    "min_people": (lambda v, _: _count(v, 1), lambda f, x: f.people >= x),
    "min_amount_yuan": (lambda v, _: _count(v, 0), lambda f, x: f.amount_yuan >= x),
    "severity": (lambda v, _: _one_of(v, SEVERITIES), lambda f, x: SEVERITIES.index(f.severity) >= SEVERITIES.index(x)),
    "parties_span": (lambda v, _: Span[_one_of(v, ("villages", "towns")).upper()], lambda f, x: f.parties_span >= x),
    "failed_mediations_min": (lambda v, _: _count(v, 1), lambda f, x: f.failed_mediations >= x),
    "overdue": (_flag, lambda f, x: f.overdue == x),
    "repeat_petition": (_flag, lambda f, x: f.repeat_petition == x),
    "at": (lambda v, _: frozenset(TIERS[_one_of(t, TIERS)] for t in _listed(v)), lambda f, x: f.holder_tier in x),
}


@dataclasses.dataclass(frozen=True)
class Rule:
    """A case meeting every condition of ``when`` must be handled at least at tier ``then``."""

    id: str
    name: str
    then: Tier
    when: tuple[tuple[str, Any], ...] = ()  # (condition, parsed value); empty: always

    def matches(self, facts: CaseFacts) -> bool:
        """True when ``facts`` meet every condition of the rule."""
        return all(CONDITIONS[key][1](facts, value) for key, value in self.when)


@dataclasses.dataclass(frozen=True)
class Policy:
    """A county's ordered containment rules."""

    name: str
    rules: tuple[Rule, ...]


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the policy decided, and why; recorded on the case."""

    target: Tier  # the tier the case must be handled at (at least); may be below the holder's
    escalate: bool  # the target is above the holder's tier
    next_node: str | None  # the tier directly above the holder, when escalating
    rule_id: str
    rule_name: str
    reason: str  # Chinese, for operators


def facts_from_case(
    case: case_pb2.Case,
    *,
    people: int = 0,
    amount_yuan: int = 0,
    severity: str = "low",
    failed_mediations: int = 0,
    repeat_petition: bool = False,
    party_divisions: Sequence[str] | None = None,
    supervisions: int | None = None,
) -> CaseFacts:
    """The facts of a case: category, holder tier and 督办 from the proto, the rest as given.

    ``party_divisions``: one code per party, as parties carry none yet (none given: the case's own
    division; a county code places no one). ``supervisions``: the count at the current tier, for
    ``case.supervisions`` counts the case's life. An empty ``severity`` (proto default) means low.
    """
    codes = [code for code in (party_divisions or [case.division_code]) if code]
    for code in codes:
        tier_of(code, field="party_divisions")  # refuses what is not a division code
    return CaseFacts(
        holder_tier=tier_of(case.holder_node, field="holder_node"),
        category=case.category,
        people=people,
        amount_yuan=amount_yuan,
        severity=severity or "low",
        party_village_codes=frozenset(c for c in codes if len(c) == 12),
        party_town_codes=frozenset(c[:9] for c in codes if len(c) >= 9),
        failed_mediations=failed_mediations,
        supervisions=case.supervisions if supervisions is None else supervisions,
        repeat_petition=repeat_petition,
    )


def decide(policy: Policy, facts: CaseFacts, holder_code: str) -> Decision:
    """The highest tier any matching rule demands (first such rule recorded); escalation goes one tier."""
    holder = tier_of(holder_code, field="holder_code")
    if facts.holder_tier is not holder:
        raise InvalidArgument("holder_code", f"与案件事实的层级（{facts.holder_tier.label}）不符")
    chosen = Rule(DEFAULT_RULE, "未命中任何规则", holder)
    for rule in policy.rules:
        if rule.matches(facts) and (chosen.id == DEFAULT_RULE or _HEIGHT[rule.then] > _HEIGHT[chosen.then]):
            chosen = rule
    up = parent_code(holder_code) if _HEIGHT[chosen.then] > _HEIGHT[holder] else None
    how = f"须由{chosen.then.label}处理，逐级上报至 {up}" if up else f"由本级（{holder.label}）处理"
    return Decision(chosen.then, up is not None, up, chosen.id, chosen.name, f"{chosen.name}：{how}")


def _rule(raw: Any, index: int, categories: tuple[str, ...]) -> Rule:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"rules[{index}]", f"第 {index + 1} 条规则须为映射")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id) or rule_id in (OPERATOR_RULE, DEFAULT_RULE):
        raise InvalidArgument(f"rules[{index}].id", f"第 {index + 1} 条规则须有 id：小写字母、数字和连字符，非保留字")
    prefix = field = f"rules.{rule_id}"
    try:  # ``field`` follows the parse so that an error names it
        for key in sorted(map(str, raw)):
            field = f"{prefix}.{key}"
            if key not in ("id", "name", "when", "then"):
                raise ValueError(f"未知字段“{key}”")
        field, name = f"{prefix}.name", raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("须有中文名称")
        field = f"{prefix}.then"
        then = TIERS[_one_of(raw.get("then"), TIERS)]
        field, when = f"{prefix}.when", raw.get("when", {})
        if not isinstance(when, dict):
            raise ValueError("须为条件的映射")
        conditions = []
        for key, value in when.items():
            field = f"{prefix}.when.{key}"
            if key not in CONDITIONS:
                raise ValueError(f"未知条件“{key}”，可用：{'、'.join(CONDITIONS)}")
            conditions.append((key, CONDITIONS[key][0](value, categories)))
    except ValueError as exc:
        raise InvalidArgument(field, f"规则“{rule_id}”：{exc}") from exc
    return Rule(rule_id, name.strip(), then, tuple(conditions))


def policy_from_dict(raw: Any, *, categories: Iterable[str]) -> Policy:
    """Validate a parsed policy file against the node's ``categories``; an error names the rule
    and the field."""
    if not isinstance(raw, dict):
        raise InvalidArgument("policy", "规则文件须为映射，含 name 与 rules")
    unknown = sorted(map(str, raw.keys() - {"name", "rules"}))
    if unknown:
        raise InvalidArgument(unknown[0], f"规则文件中有未知字段“{unknown[0]}”")
    if not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise InvalidArgument("rules", "规则文件须含非空的 rules 列表")
    rules: list[Rule] = []
    for index, item in enumerate(raw["rules"]):
        rule = _rule(item, index, tuple(categories))
        if any(r.id == rule.id for r in rules):
            raise InvalidArgument(f"rules.{rule.id}.id", f"规则 id“{rule.id}”重复")
        rules.append(rule)
    return Policy(name=str(raw.get("name") or "分级化解规则"), rules=tuple(rules))


def load_policy(path: Path, *, categories: Iterable[str]) -> Policy:
    """Read and validate a containment policy file."""
    return policy_from_dict(read_yaml(path, field="policy_file"), categories=categories)


class PolicyFile(ReloadingFile[Policy]):
    """The county's containment policy file, reloaded when it changes; never broken."""

    def __init__(self, path: Path, *, categories: Iterable[str]) -> None:
        known = tuple(categories)
        super().__init__(path, lambda p: load_policy(p, categories=known), what="containment policy")
