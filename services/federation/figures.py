"""The figures (pure; docs/ARCHITECTURE.md, *Figures*): one row of facts per case, additive tallies, rollup, rates.

Each node's figures describe a **cohort**: the cases received (受理) during the period at or
below the node. A case contributes one ``FigureFacts`` derived from its folded state, and a
node's ``Tally`` is the plain sum of the facts of the cases taken in anywhere in its subtree.
Sums are exact under any order of arrival, so the rollup village → town → county is just
addition, and a village that syncs a week late changes the figures to exactly what a recompute
from scratch gives (the projection it is read from is the idempotent fold of the events).

Rates keep their numerator and denominator:

- closure rate = closed / received (closed: 办结, 回访 or 归档 now);
- on-time rate = closed at or before the deadline in force when closing / closed
  (a case closed without any deadline counts as on time);
- mediation success rate = closed with the feedback slip's ``mediated`` / closed;
- follow-up rate = followed up (回访 or 归档) / closed; satisfaction = mean of the latest
  evaluation (1–5) over the followed-up cases;
- handling time = mean hours from 受理 to 办结 over the closed cases;
- 小事不出村 = closed with the village as resolving tier / closed; 大事不出镇 = closed at a
  village or town / closed; 矛盾不上交 (escalated to the county) = cases taken in below the
  county that the county now holds / received;
- overdue = open cases past their current deadline at the time of computing; supervised =
  cases with at least one 督办; escalated = cases with at least one accepted 上报.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

from fengqiao.cases import facts
from fengqiao.v1 import common_pb2

FigureFacts = facts.FigureFacts
facts_of = facts.facts_of
"""What one case contributes, defined once beside the case store, which keeps it as rows."""


@dataclasses.dataclass
class Tally:
    """Additive counters of a set of cases; every figure is derived from these."""

    received: int = 0
    closed: int = 0
    on_time: int = 0
    mediated: int = 0
    followed_up: int = 0
    satisfaction_sum: int = 0
    handling_seconds: int = 0
    at_village: int = 0
    at_or_below_town: int = 0
    at_county: int = 0
    overdue: int = 0
    supervised: int = 0
    escalated: int = 0

    def add(self, facts: FigureFacts) -> None:
        self.received += 1
        self.closed += facts.closed
        self.on_time += facts.on_time
        self.mediated += facts.mediated
        self.followed_up += facts.followed_up
        self.satisfaction_sum += facts.satisfaction
        self.handling_seconds += facts.handling_seconds
        self.at_village += facts.resolved_tier == common_pb2.TIER_VILLAGE
        self.at_or_below_town += facts.resolved_tier in (common_pb2.TIER_VILLAGE, common_pb2.TIER_TOWN)
        self.at_county += facts.at_county
        self.overdue += facts.overdue
        self.supervised += facts.supervised
        self.escalated += facts.escalated

    def merge(self, other: Tally) -> None:
        for name in _TALLY_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_TALLY_FIELDS = tuple(f.name for f in dataclasses.fields(Tally))


def tally_by_origin(facts: Iterable[FigureFacts]) -> dict[str, Tally]:
    """One tally per node that took cases in."""
    tallies: dict[str, Tally] = {}
    for item in facts:
        tallies.setdefault(item.origin, Tally()).add(item)
    return tallies


def rollup(by_origin: Mapping[str, Tally], codes: Iterable[str]) -> dict[str, Tally]:
    """The tally of each of ``codes``: the sum over every origin at or below it (``is_within``:
    a code is within each of its prefixes)."""
    result = {code: Tally() for code in codes}
    for origin, tally in by_origin.items():
        for length in range(1, len(origin) + 1):
            total = result.get(origin[:length])
            if total is not None:
                total.merge(tally)
    return result


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when there is nothing to divide by."""
    return numerator / denominator if denominator else 0.0


RATES: dict[str, tuple[str, str]] = {
    "closure_rate": ("closed", "received"),
    "on_time_rate": ("on_time", "closed"),
    "mediation_success_rate": ("mediated", "closed"),
    "follow_up_rate": ("followed_up", "closed"),
    "resolved_at_village": ("at_village", "closed"),
    "resolved_at_or_below_town": ("at_or_below_town", "closed"),
    "escalated_to_county": ("at_county", "received"),
}
"""Each rate of ``NodeStats``: (numerator, denominator) fields of ``Tally``."""

COUNTS = ("received", "closed", "overdue", "supervised", "escalated")


def rates(tally: Tally) -> dict[str, tuple[int, int, float]]:
    """Every rate as (numerator, denominator, value)."""
    out = {}
    for name, (num, den) in RATES.items():
        n, d = getattr(tally, num), getattr(tally, den)
        out[name] = (n, d, ratio(n, d))
    return out


def means(tally: Tally) -> dict[str, tuple[float, int, float]]:
    """Mean satisfaction and handling hours as (sum, count, value)."""
    hours = tally.handling_seconds / 3600
    score, scored = float(tally.satisfaction_sum), tally.followed_up
    return {
        "satisfaction": (score, scored, ratio(score, scored)),
        "handling_hours": (hours, tally.closed, ratio(hours, tally.closed)),
    }


def is_stale(latest: dt.datetime | None, *, now: dt.datetime, after: dt.timedelta) -> bool:
    """A node is stale when its newest event is older than ``after`` (or it has none)."""
    return latest is None or now - latest > after
