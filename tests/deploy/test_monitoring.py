"""The county's monitoring as shipped in deploy/: the Grafana dashboard and the alert rules ask
only for metrics a node serves, and the dashboard shows every one of them. (``make lint`` runs
``promtool check rules`` and ``promtool test rules`` on the rules.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.system.test_metrics import COUNTERS, GAUGES, HISTOGRAMS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVED = {*GAUGES, *COUNTERS, *HISTOGRAMS}
NAME = re.compile(r"\bfengqiao_[a-z_]+")


def metric(name: str) -> str:
    """The family a sample name belongs to (``_total``, ``_bucket``, … removed)."""
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name.removesuffix(suffix) in SERVED:
            return name.removesuffix(suffix)
    return name


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "fengqiao-county.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_dashboard_shows_every_metric_a_node_serves_and_nothing_else() -> None:
    asked = {metric(n) for q in dashboard_queries() for n in NAME.findall(q)}
    assert asked == SERVED


def test_the_alert_rules_ask_for_served_metrics_and_cover_the_alarms() -> None:
    """The four alarms the county asked for, and a quarantined outbox row (a case held back)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "fengqiao-alerts.yaml").read_text(encoding="utf-8"))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "FengqiaoLinkDown",
        "FengqiaoOutboxStale",
        "FengqiaoDeadLetter",
        "FengqiaoOverdueRising",
        "FengqiaoOutboxQuarantined",
    }
    assert alerts["FengqiaoLinkDown"]["for"] == "10m" and "3600" in alerts["FengqiaoOutboxStale"]["expr"]
    for rule in alerts.values():
        assert {metric(n) for n in NAME.findall(rule["expr"])} <= SERVED, rule["alert"]
