"""The figure facts of a case (pure; docs/ARCHITECTURE.md, *Figures*).

A case contributes one ``FigureFacts`` derived from its folded state, and one ``Assignment``
per 交办 and one ``Call`` per 吹哨 summons derived from its log. The federation's figures are
sums of these. They are defined here, once, because the case store keeps them as rows beside
the projection (``fengqiao.cases.factstore``), updated by every fold in the same transaction,
and the figures are SQL sums of those rows.

``FigureFacts`` is a function of the case; ``Track`` follows the log one event at a time (the
state after each event at hand), so a fold that appends events to a case can bring its
assignment facts up to date from the ones stored without reading the whole log again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from fengqiao.cases import lifecycle
from fengqiao.divisions import Tier, tier_of
from fengqiao.v1 import case_pb2 as pb

GRID_CHANNEL = "网格员上报"
"""The intake channel of cases reported by grid workers (their figures and 红黑榜)."""

FOLLOWED_UP = frozenset({pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED})


@dataclasses.dataclass(frozen=True)
class FigureFacts:
    """What one case contributes to the figures."""

    origin: str
    category: str
    received_at: dt.datetime
    closed: bool = False
    on_time: bool = False
    mediated: bool = False
    followed_up: bool = False
    satisfaction: int = 0
    handling_seconds: int = 0  # whole seconds: sums stay exact in any order
    resolved_tier: int = 0
    at_county: bool = False
    overdue: bool = False
    supervised: bool = False
    escalated: bool = False


def _time(ts: object) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)  # type: ignore[attr-defined]


def closed_on_time(closed_at: dt.datetime | None, deadline: dt.datetime | None) -> bool:
    """The on-time rule: closed at or before the deadline in force (no deadline: on time)."""
    return deadline is None or closed_at is None or closed_at <= deadline


def open_deadline(case: pb.Case) -> dt.datetime | None:
    """The deadline an open case is overdue after (None for a closed case or one without)."""
    if case.status in lifecycle.CLOSED_STATUSES or not case.HasField("deadline"):
        return None
    return _time(case.deadline)


def facts_of(case: pb.Case, *, now: dt.datetime) -> FigureFacts:
    """The facts of a case in its current (folded) state, as of ``now``."""
    closed = case.status in lifecycle.CLOSED_STATUSES
    received_at = _time(case.received_at)
    closed_at = _time(case.closed_at) if closed and case.HasField("closed_at") else None
    deadline = _time(case.deadline) if case.HasField("deadline") else None
    followed = case.status in FOLLOWED_UP
    return FigureFacts(
        origin=case.origin_node,
        category=case.category,
        received_at=received_at,
        closed=closed,
        on_time=closed and closed_on_time(closed_at, deadline),
        mediated=closed and case.feedback.mediated,
        followed_up=followed,
        satisfaction=case.evaluation.satisfaction if followed else 0,
        handling_seconds=round((closed_at - received_at).total_seconds()) if closed_at is not None else 0,
        resolved_tier=int(case.resolved_tier) if closed else 0,
        at_county=tier_of(case.holder_node) is Tier.COUNTY and tier_of(case.origin_node) is not Tier.COUNTY,
        overdue=not closed and deadline is not None and deadline < now,
        supervised=case.supervisions > 0,
        escalated=case.escalations > 0,
    )


def grid_worker_of(case: pb.Case) -> str:
    """The grid worker a case counts for (its reporter, for 网格员上报 only), or ''."""
    return case.reporter if case.channel == GRID_CHANNEL else ""


@dataclasses.dataclass
class Assignment:
    """One 交办 and what became of it."""

    department: str
    acknowledged: bool = False
    returned: bool = False
    escalated_away: bool = False
    closed_on_time: bool | None = None  # None while not closed under this assignment
    deadline: dt.datetime | None = None
    satisfaction: int = 0


@dataclasses.dataclass
class Call:
    """A department summoned by 吹哨 (its first summons' 报到 deadline) or reporting for duty
    (its first 报到); a call counts once summoned."""

    department: str
    report_by: dt.datetime | None = None
    reported_at: dt.datetime | None = None


def assignment_deadline(case: pb.Case) -> dt.datetime | None:
    """The deadline of the current assignment: the slip's, else the case's."""
    slip = case.assignment
    if slip.HasField("deadline"):
        return _time(slip.deadline)
    return _time(case.deadline) if case.HasField("deadline") else None


TRACKED = frozenset(
    {
        "assigned",
        "acknowledged",
        "extension_decided",
        "returned",
        "escalation_accepted",
        "closed",
        "follow_up",
        "reopened",
        "whistled",
        "reported_for_duty",
    }
)
"""The events that change a case's assignments or calls."""


@dataclasses.dataclass
class Track:
    """A case's assignments and calls so far, with which assignment is current (being handled)
    and which one closed the case (and may still get the 回访's satisfaction), by position."""

    assignments: list[Assignment] = dataclasses.field(default_factory=list)
    calls: list[Call] = dataclasses.field(default_factory=list)
    current: int | None = None
    closer: int | None = None

    def step(self, case: pb.Case, event: pb.CaseEvent) -> None:
        """Follow ``event``; ``case`` is the case after it."""
        kind = event.WhichOneof("payload")
        current = self.assignments[self.current] if self.current is not None else None
        if kind == "assigned":
            self.assignments.append(Assignment(event.assigned.slip.department, deadline=assignment_deadline(case)))
            self.current = len(self.assignments) - 1
        elif current is not None and kind == "acknowledged":
            current.acknowledged = True
        elif current is not None and kind == "extension_decided":
            current.deadline = assignment_deadline(case)
        elif current is not None and kind == "returned":
            current.returned, self.current = True, None
        elif current is not None and kind == "escalation_accepted":
            current.escalated_away, self.current = True, None
        elif current is not None and kind == "closed":
            current.closed_on_time = closed_on_time(_time(event.at), current.deadline)
            self.closer, self.current = self.current, None
        elif self.closer is not None and kind == "follow_up":
            self.assignments[self.closer].satisfaction = event.follow_up.slip.satisfaction
        elif kind == "reopened":
            self.closer = None
        elif kind == "whistled":
            for summons in event.whistled.summons:
                call = self._call(summons.department)
                if call.report_by is None:
                    call.report_by = _time(summons.report_by)
        elif kind == "reported_for_duty":
            call = self._call(event.reported_for_duty.department)
            if call.reported_at is None:
                call.reported_at = _time(event.at)

    def _call(self, department: str) -> Call:
        for call in self.calls:
            if call.department == department:
                return call
        self.calls.append(Call(department))
        return self.calls[-1]
