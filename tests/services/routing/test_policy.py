"""The containment policy (小事不出村、大事不出镇), against the rules file the repo ships; and a
county's own category routed by its containment file, through the running services."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.natsserver import NatsServer
from fengqiao.cases import store as casestore
from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES
from fengqiao.divisions import Tier
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2, common_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import LocalCounty, small_county, submit_request
from host.node import Node
from services.routing import policy
from services.routing.config import RoutingSettings
from services.routing.rules import escalation_request
from tests.system.test_county_sync import eventually

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "deploy" / "policy" / "containment.yaml"
POLICY = policy.load_policy(SHIPPED, categories=DEFAULT_CATEGORIES)

# Sample codes shaped like 统计用区划代码 (deploy/topology/mudan-sample.yaml).
COUNTY = "371702"
TOWN = "371702101"  # 吴店镇
OTHER_TOWN = "371702102"  # 皇镇街道
VILLAGE = "371702101001"  # 吴店村
NEIGHBOUR_VILLAGE = "371702101002"  # 刘庄村, same town
VILLAGE_OVER_THE_TOWN_LINE = "371702102001"


def case(holder: str = VILLAGE, category: str = "邻里", *, supervisions: int = 0) -> case_pb2.Case:
    """A case held at ``holder`` about a matter in 吴店村."""
    return case_pb2.Case(
        id="case-1",
        holder_node=holder,
        origin_node=VILLAGE,
        division_code=VILLAGE,
        category=category,
        supervisions=supervisions,
    )


def decide(holder: str = VILLAGE, category: str = "邻里", *, supervisions: int = 0, **given: Any) -> policy.Decision:
    """The shipped policy's decision on a case held at ``holder``."""
    facts = policy.facts_from_case(case(holder, category, supervisions=supervisions), **given)
    return policy.decide(POLICY, facts, holder)


def assert_goes_to_town(decision: policy.Decision, rule_id: str) -> None:
    assert (decision.target, decision.escalate, decision.next_node) == (Tier.TOWN, True, TOWN)
    assert decision.rule_id == rule_id


def assert_stays(decision: policy.Decision, rule_id: str = "small-matters-stay-in-village") -> None:
    assert (decision.escalate, decision.next_node, decision.rule_id) == (False, None, rule_id)


# The shipped rules -------------------------------------------------------------------------------


def test_the_shipped_policy_has_its_rules_in_order_with_chinese_names() -> None:
    assert [r.id for r in POLICY.rules] == [
        "cross-town-to-county", "repeat-petition-to-county", "failed-mediation-at-town-to-county",
        "overdue-at-town-to-county", "land-acquisition-to-town", "mass-dispute-to-town",
        "cross-village-land-to-town", "large-amount-to-town", "high-severity-to-town",
        "failed-mediation-at-village-to-town", "overdue-at-village-to-town", "small-matters-stay-in-village",
    ]  # fmt: skip
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r.name) for r in POLICY.rules)


def test_the_default_settings_point_at_the_shipped_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = RoutingSettings()
    assert (REPO / settings.policy_file).resolve() == SHIPPED
    assert settings.auto_accept_escalations is True
    monkeypatch.setenv("FQ_ROUTING_POLICY_FILE", "/etc/fengqiao/policy.yaml")
    assert RoutingSettings().policy_file == Path("/etc/fengqiao/policy.yaml")


def test_village_escalates_land_acquisition_dispute_to_town() -> None:
    decision = decide(category="征地拆迁")
    assert_goes_to_town(decision, "land-acquisition-to-town")
    assert decision.rule_name == "征地拆迁纠纷由乡镇处理"
    assert "征地拆迁纠纷由乡镇处理" in decision.reason and TOWN in decision.reason


@pytest.mark.parametrize("category", ["邻里", "婚姻家庭"])
def test_neighbour_dispute_stays_in_the_village(category: str) -> None:
    decision = decide(category=category)
    assert_stays(decision)
    assert decision.target is Tier.VILLAGE
    assert "本级" in decision.reason


def test_small_contract_dispute_stays_in_the_village_and_a_large_one_goes_to_town() -> None:
    assert_stays(decide(category="合同", amount_yuan=99_999))
    assert_goes_to_town(decide(category="合同", amount_yuan=100_000), "large-amount-to-town")


def test_a_mass_dispute_of_five_people_goes_to_town_and_four_people_stay() -> None:
    assert_stays(decide(people=4))
    assert_goes_to_town(decide(people=5), "mass-dispute-to-town")


@pytest.mark.parametrize("category", ["山林土地", "房屋宅基地"])
def test_land_dispute_across_villages_goes_to_town(category: str) -> None:
    decision = decide(category=category, party_divisions=[VILLAGE, NEIGHBOUR_VILLAGE])
    assert_goes_to_town(decision, "cross-village-land-to-town")


def test_land_dispute_within_one_village_stays_and_so_does_a_cross_village_neighbour_quarrel() -> None:
    assert_stays(decide(category="山林土地", party_divisions=[VILLAGE, VILLAGE]))
    assert_stays(decide(category="邻里", party_divisions=[VILLAGE, NEIGHBOUR_VILLAGE]))


def test_high_severity_goes_to_town_and_medium_stays() -> None:
    assert_stays(decide(severity="medium"))
    assert_goes_to_town(decide(severity="high"), "high-severity-to-town")


def test_village_failing_mediation_twice_escalates_to_town() -> None:
    assert_stays(decide(failed_mediations=1))
    assert_goes_to_town(decide(failed_mediations=2), "failed-mediation-at-village-to-town")


def test_town_failing_mediation_twice_escalates_to_county() -> None:
    assert decide(TOWN, failed_mediations=1).escalate is False
    decision = decide(TOWN, failed_mediations=2)
    assert (decision.target, decision.next_node) == (Tier.COUNTY, COUNTY)
    assert decision.rule_id == "failed-mediation-at-town-to-county"


def test_overdue_case_under_supervision_goes_up_one_tier() -> None:
    assert_goes_to_town(decide(supervisions=1), "overdue-at-village-to-town")
    at_town = decide(TOWN, supervisions=1)
    assert (at_town.target, at_town.next_node, at_town.rule_id) == (Tier.COUNTY, COUNTY, "overdue-at-town-to-county")


def test_supervisions_at_the_current_tier_override_the_lifetime_count() -> None:
    supervised_at_the_village = case(TOWN, supervisions=1)
    facts = policy.facts_from_case(supervised_at_the_village, supervisions=0)
    assert policy.decide(POLICY, facts, TOWN).escalate is False


def test_cross_town_dispute_goes_up_one_tier_at_a_time() -> None:
    parties = [VILLAGE, VILLAGE_OVER_THE_TOWN_LINE]
    at_village = decide(party_divisions=parties)
    assert (at_village.target, at_village.escalate, at_village.next_node) == (Tier.COUNTY, True, TOWN)
    assert at_village.rule_id == "cross-town-to-county"
    at_town = decide(TOWN, party_divisions=parties)
    assert (at_town.target, at_town.escalate, at_town.next_node) == (Tier.COUNTY, True, COUNTY)


def test_repeat_petition_goes_to_the_county_one_tier_at_a_time() -> None:
    decision = decide(category="邻里", repeat_petition=True)
    assert (decision.target, decision.next_node, decision.rule_id) == (Tier.COUNTY, TOWN, "repeat-petition-to-county")


def test_county_never_escalates() -> None:
    decision = decide(COUNTY, "征地拆迁", repeat_petition=True, party_divisions=[VILLAGE, VILLAGE_OVER_THE_TOWN_LINE])
    assert (decision.target, decision.escalate, decision.next_node) == (Tier.COUNTY, False, None)
    with pytest.raises(IllegalTransition):
        escalation_request(case(COUNTY), reason="县里也解决不了", rule_id=policy.OPERATOR_RULE, rule_name="人工上报")


def test_town_keeps_what_belongs_to_the_town_and_never_sends_a_case_down() -> None:
    assert_stays(decide(TOWN, "征地拆迁"), "land-acquisition-to-town")
    small = decide(TOWN, "邻里")
    assert (small.target, small.escalate) == (Tier.VILLAGE, False)


def test_the_highest_demand_wins_and_the_first_rule_demanding_it_is_recorded() -> None:
    assert decide(category="征地拆迁", people=30, severity="high").rule_id == "land-acquisition-to-town"
    county = decide(category="征地拆迁", party_divisions=[VILLAGE, VILLAGE_OVER_THE_TOWN_LINE])
    assert (county.target, county.rule_id) == (Tier.COUNTY, "cross-town-to-county")


def test_a_policy_without_a_matching_rule_keeps_the_case_where_it_is() -> None:
    rule = {"id": "land", "name": "征地拆迁纠纷由乡镇处理", "when": {"categories": ["征地拆迁"]}, "then": "town"}
    only = policy.policy_from_dict({"rules": [rule]}, categories=DEFAULT_CATEGORIES)
    decision = policy.decide(only, policy.facts_from_case(case()), VILLAGE)
    assert (decision.target, decision.escalate, decision.rule_id) == (Tier.VILLAGE, False, policy.DEFAULT_RULE)


# Operator escalations and facts -----------------------------------------------------------------


def test_operator_escalation_goes_one_tier_up_with_the_reason_recorded() -> None:
    reason = "当事人情绪激烈，村里调不动"
    step = escalation_request(case(VILLAGE), reason=reason, rule_id=policy.OPERATOR_RULE, rule_name="人工上报")
    assert (step.to_node, step.rule_id, step.reason) == (TOWN, policy.OPERATOR_RULE, reason)
    at_town = escalation_request(case(TOWN), reason=reason, rule_id=policy.OPERATOR_RULE, rule_name="人工上报")
    assert at_town.to_node == COUNTY


def test_facts_come_from_the_case_and_what_the_operator_states() -> None:
    facts = policy.facts_from_case(case(TOWN, "山林土地", supervisions=2), severity="", people=7)
    assert (facts.holder_tier, facts.category, facts.people, facts.severity) == (Tier.TOWN, "山林土地", 7, "low")
    assert (facts.supervisions, facts.overdue, facts.parties_span) == (2, True, policy.Span.NONE)
    assert policy.facts_from_case(case(TOWN), supervisions=0).overdue is False


def test_parties_span_is_computed_from_their_division_codes() -> None:
    def span(*codes: str) -> policy.Span:
        return policy.facts_from_case(case(), party_divisions=list(codes)).parties_span

    assert span(VILLAGE, VILLAGE, TOWN, COUNTY) is policy.Span.NONE
    assert span(VILLAGE, NEIGHBOUR_VILLAGE) is policy.Span.VILLAGES
    assert span(VILLAGE, OTHER_TOWN) is policy.Span.TOWNS


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"party_divisions": ["37170"]}, "party_divisions"),
        ({"severity": "huge"}, "severity"),
        ({"people": -1}, "people"),
    ],
)
def test_bad_facts_are_refused_naming_the_field(given: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        policy.facts_from_case(case(), **given)
    assert raised.value.field == field


def test_facts_must_be_of_the_holder_deciding() -> None:
    with pytest.raises(InvalidArgument) as raised:
        policy.decide(POLICY, policy.facts_from_case(case(VILLAGE)), TOWN)
    assert raised.value.field == "holder_code"


# Validation of the rules file -------------------------------------------------------------------


def shipped_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    return raw


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"when": {"categories": ["征地"]}}, "rules.land-acquisition-to-town.when.categories"),
        ({"when": {"min_persons": 5}}, "rules.land-acquisition-to-town.when.min_persons"),
        ({"when": {"min_people": "五"}}, "rules.land-acquisition-to-town.when.min_people"),
        ({"when": {"severity": "critical"}}, "rules.land-acquisition-to-town.when.severity"),
        ({"when": {"parties_span": "counties"}}, "rules.land-acquisition-to-town.when.parties_span"),
        ({"when": {"overdue": "yes"}}, "rules.land-acquisition-to-town.when.overdue"),
        ({"when": {"at": ["province"]}}, "rules.land-acquisition-to-town.when.at"),
        ({"then": "province"}, "rules.land-acquisition-to-town.then"),
        ({"name": ""}, "rules.land-acquisition-to-town.name"),
        ({"unless": {}}, "rules.land-acquisition-to-town.unless"),
    ],
)
def test_malformed_policy_names_the_rule_and_field(change: dict[str, Any], field: str) -> None:
    raw = shipped_raw()
    rule = next(r for r in raw["rules"] if r["id"] == "land-acquisition-to-town")
    rule.update(change)
    with pytest.raises(InvalidArgument) as raised:
        policy.policy_from_dict(raw, categories=DEFAULT_CATEGORIES)
    assert raised.value.field == field
    assert "land-acquisition-to-town" in raised.value.message and field in raised.value.message


@pytest.mark.parametrize(
    ("index", "bad_id", "field"),
    [
        (0, None, "rules[0].id"),
        (0, "Cross Town", "rules[0].id"),
        (0, "operator", "rules[0].id"),
        (1, "cross-town-to-county", "rules.cross-town-to-county.id"),
    ],
)
def test_rules_need_ids_that_are_well_formed_unique_and_not_reserved(index: int, bad_id: Any, field: str) -> None:
    raw = shipped_raw()
    raw["rules"][index]["id"] = bad_id
    with pytest.raises(InvalidArgument) as raised:
        policy.policy_from_dict(raw, categories=DEFAULT_CATEGORIES)
    assert raised.value.field == field


def test_a_county_may_add_its_own_categories() -> None:
    raw = shipped_raw()
    next(r for r in raw["rules"] if r["id"] == "land-acquisition-to-town")["when"]["categories"].append("移民安置")
    with pytest.raises(InvalidArgument, match="移民安置"):
        policy.policy_from_dict(raw, categories=DEFAULT_CATEGORIES)
    county = policy.policy_from_dict(raw, categories=[*DEFAULT_CATEGORIES, "移民安置"])
    facts = policy.facts_from_case(case(category="移民安置"))
    assert_goes_to_town(policy.decide(county, facts, VILLAGE), "land-acquisition-to-town")


def test_a_file_that_is_not_a_policy_is_refused(tmp_path: Path) -> None:
    for text, field in [("rules: [", "policy_file"), ("- 1", "policy"), ("name: x\n", "rules"), ("rulez: []", "rulez")]:
        (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
        with pytest.raises(InvalidArgument) as raised:
            policy.load_policy(tmp_path / "p.yaml", categories=DEFAULT_CATEGORIES)
        assert raised.value.field == field
    with pytest.raises(InvalidArgument):
        policy.PolicyFile(tmp_path / "missing.yaml", categories=DEFAULT_CATEGORIES)


# Reloading ---------------------------------------------------------------------------------------


def test_policy_file_reloads_when_changed_and_keeps_the_old_one_when_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "containment.yaml"
    path.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    watched = policy.PolicyFile(path, categories=DEFAULT_CATEGORIES)
    first = watched.current()
    assert watched.current() is first and len(first.rules) == len(POLICY.rules)

    raw = shipped_raw()
    raw["rules"] = [r for r in raw["rules"] if r["id"] != "land-acquisition-to-town"]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    second = watched.current()
    assert "land-acquisition-to-town" not in [r.id for r in second.rules]
    assert policy.decide(second, policy.facts_from_case(case(category="征地拆迁")), VILLAGE).escalate is False

    path.write_text("rules:\n  - id: broken\n    name: 坏规则\n    then: province\n", encoding="utf-8")
    os.utime(path, ns=(3_000_000_000, 3_000_000_000))
    with caplog.at_level(logging.WARNING, logger="fengqiao.rulefile"):
        assert watched.current() is second
        assert watched.current() is second
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "rules.broken.then" in warnings[0].getMessage()

    path.unlink()
    assert watched.current() is second


# A county's own category, through the running services ------------------------------------------

FRAUD = "网络诈骗"
FRAUD_RULE = {
    "id": "online-fraud-to-county",
    "name": "网络诈骗由县级处理",
    "when": {"categories": [FRAUD]},
    "then": "county",
}


def county_containment(tmp_path: Path) -> Path:
    """The shipped containment file with a rule sending 网络诈骗 to the county."""
    raw = shipped_raw()
    raw["rules"].insert(0, FRAUD_RULE)
    path = tmp_path / "containment.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def test_a_county_that_adds_a_category_routes_it_by_its_containment_file(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_ROUTING_POLICY_FILE", str(county_containment(tmp_path)))
    local = LocalCounty(small_county(towns=1, villages=1), tmp_path / "county", nats_server.url, database_url)
    await local.start(categories=(*DEFAULT_CATEGORIES, FRAUD))
    try:
        async with channel(local[VILLAGE].grpc_address) as ch:
            taken = await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE, category=FRAUD))
            decision = await routing_pb2_grpc.RoutingStub(ch).ApplyPolicy(
                routing_pb2.ApplyPolicyRequest(case_id=taken.case.id, actor="村值班员")
            )
        assert (decision.escalate, decision.next_node, decision.rule_id) == (True, TOWN, "online-fraud-to-county")
        assert decision.target_tier == common_pb2.TIER_COUNTY and "网络诈骗由县级处理" in decision.reason
        assert decision.case.status == case_pb2.CASE_STATUS_ESCALATING

        async def held_by(code: str) -> bool:
            db = local[code].ctx.db  # type: ignore[union-attr]
            found = await db.read(lambda s: casestore.load_case(s, case_id=taken.case.id))
            return found is not None and found.holder_node == code

        await eventually(lambda: held_by(TOWN), within_s=5, what="the town takes up the escalated case")
        async with channel(local[TOWN].grpc_address) as ch:  # the town's policy knows the category too
            at_town = await routing_pb2_grpc.RoutingStub(ch).ApplyPolicy(
                routing_pb2.ApplyPolicyRequest(case_id=taken.case.id, actor="镇值班员")
            )
        assert (at_town.escalate, at_town.next_node, at_town.rule_id) == (True, COUNTY, "online-fraud-to-county")
        await eventually(lambda: held_by(COUNTY), within_s=5, what="the county takes up the case")
    finally:
        await local.stop()


async def test_without_the_category_setting_the_same_containment_file_is_refused_in_chinese(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_ROUTING_POLICY_FILE", str(county_containment(tmp_path)))
    local = LocalCounty(small_county(towns=1, villages=1), tmp_path / "county", nats_server.url, database_url)
    node = Node(local.settings(VILLAGE))
    try:
        with pytest.raises(InvalidArgument) as refused:
            await node.start()
    finally:
        await node.stop()
    assert refused.value.field == "rules.online-fraud-to-county.when.categories"
    assert "“网络诈骗”无效" in refused.value.message
