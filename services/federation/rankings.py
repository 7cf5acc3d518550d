"""红黑榜 (pure): departments ranked each quarter, grid workers each month.

**Departments.** Every 交办 of a case in the cohort (cases received in the period) is one
assignment of the slip's department, followed through the case's log: 签收 (acknowledged),
退单 (returned), 办结 while it was the current assignment — on time when at or before the
slip's deadline in force then (延期 included) — or still open past that deadline now
(overdue), and the 回访 satisfaction of the case it closed. Rates:
acknowledgement = (签收 + 报到 in time) / (交办 + calls due), where a call is a 中心吹哨 summons of
the department and is due once answered or past its 报到 deadline; return = 退单 / 交办; on-time
= closed on time / (closed + open overdue), returned and escalated-away assignments excluded;
satisfaction = mean score.

**Grid workers.** The cases taken in through the 网格员上报 channel in the month, by their
reporter and node: reports, closure rate (closed / reports), and score = mean 回访 satisfaction.

**Scores, small samples and ties.** Each score is 0–100, the mean of components in [0, 1].
Rates enter as the lower bound of their 95 % Wilson interval, so three out of three does not
beat 95 out of 100; satisfaction enters shrunk towards the neutral 3 by two pseudo-scores,
then scaled (mean − 1) / 4; with nothing due yet, on-time enters as a neutral 0.5. For grid
workers the score weighs reports / the most reports of anyone ranked (0.4), closure (0.3) and
satisfaction (0.3). Entries under ``min_sample`` (assignments, or reports) are listed unranked
(rank 0) and never on a list. Ranked entries get competition ranks on the score rounded to
0.01 (equal scores share a rank: 1, 2, 2, 4), ties listed by name. 红榜 holds the entries
ranked within the best ``list_size``, 黑榜 those within the worst ``list_size`` counted from
the bottom; with fewer than 2 × ``list_size`` ranked, each list takes at most half, and no
entry is on both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from fengqiao.cases import facts, lifecycle
from fengqiao.cases.facts import Assignment
from fengqiao.errors import FengqiaoError
from fengqiao.v1 import case_pb2 as pb

GRID_CHANNEL = facts.GRID_CHANNEL
Z95 = 1.96


def wilson_lower(successes: int, trials: int, z: float = Z95) -> float:
    """Lower bound of the Wilson score interval of a proportion (0 for no trials)."""
    if trials <= 0:
        return 0.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, (centre - spread) / (1 + z * z / trials))


def satisfaction_component(total: int, count: int, *, prior: float = 3.0, weight: int = 2) -> float:
    """Mean satisfaction shrunk towards ``prior`` by ``weight`` pseudo-scores, scaled to [0, 1]."""
    return ((total + prior * weight) / (count + weight) - 1) / 4


def _deadline(case: pb.Case) -> dt.datetime | None:
    slip = case.assignment
    if slip.HasField("deadline"):
        return slip.deadline.ToDatetime(tzinfo=dt.UTC)
    return case.deadline.ToDatetime(tzinfo=dt.UTC) if case.HasField("deadline") else None


def assignments_of(events: Sequence[pb.CaseEvent]) -> list[Assignment]:
    """The assignments of one case, from its log (its contiguous prefix, as the fold sees it)."""
    case: pb.Case | None = None
    current: Assignment | None = None
    closer: Assignment | None = None
    out: list[Assignment] = []
    for event in sorted(events, key=lambda e: e.seq):
        try:
            case = lifecycle.apply(case, event)
        except FengqiaoError:
            break  # a gap or an event the fold refuses: the projection stops there too
        kind = event.WhichOneof("payload")
        if kind == "assigned":
            current = Assignment(event.assigned.slip.department, deadline=_deadline(case))
            out.append(current)
        elif current is not None and kind == "acknowledged":
            current.acknowledged = True
        elif current is not None and kind == "extension_decided":
            current.deadline = _deadline(case)
        elif current is not None and kind == "returned":
            current.returned, current = True, None
        elif current is not None and kind == "escalation_accepted":
            current.escalated_away, current = True, None
        elif current is not None and kind == "closed":
            at = event.at.ToDatetime(tzinfo=dt.UTC)
            current.closed_on_time = current.deadline is None or at <= current.deadline
            closer, current = current, None
        elif closer is not None and kind == "follow_up":
            closer.satisfaction = event.follow_up.slip.satisfaction
        elif kind == "reopened":
            closer = None
    return out


@dataclasses.dataclass
class DepartmentTally:
    department: str
    assignments: int = 0
    acknowledged: int = 0
    returned: int = 0
    on_time: int = 0
    due: int = 0  # closed, or open past the deadline
    satisfaction_sum: int = 0
    satisfaction_count: int = 0
    calls: int = 0  # 吹哨 summons due (answered, or past the 报到 deadline)
    reported_in_time: int = 0

    @property
    def answered(self) -> int:
        """签收 of assignments plus 报到 in time."""
        return self.acknowledged + self.reported_in_time

    @property
    def asked(self) -> int:
        """Assignments plus calls due."""
        return self.assignments + self.calls


def calls_of(events: Sequence[pb.CaseEvent], *, now: dt.datetime) -> list[tuple[str, bool]]:
    """The 吹哨 calls of one case that are due as of ``now``: (department, reported in time)."""
    report_by: dict[str, dt.datetime] = {}
    reported: dict[str, dt.datetime] = {}
    for event in sorted(events, key=lambda e: e.seq):
        if event.HasField("whistled"):
            for summons in event.whistled.summons:
                report_by.setdefault(summons.department, summons.report_by.ToDatetime(tzinfo=dt.UTC))
        elif event.HasField("reported_for_duty"):
            reported.setdefault(event.reported_for_duty.department, event.at.ToDatetime(tzinfo=dt.UTC))
    return [
        (department, department in reported and reported[department] <= deadline)
        for department, deadline in report_by.items()
        if department in reported or deadline < now
    ]


def department_tallies(logs: Iterable[Sequence[pb.CaseEvent]], *, now: dt.datetime) -> list[DepartmentTally]:
    """Tallies per department over the given case logs, as of ``now``."""
    tallies: dict[str, DepartmentTally] = {}
    for log in logs:
        for department, in_time in calls_of(log, now=now):
            t = tallies.setdefault(department, DepartmentTally(department))
            t.calls += 1
            t.reported_in_time += in_time
        for a in assignments_of(log):
            t = tallies.setdefault(a.department, DepartmentTally(a.department))
            t.assignments += 1
            t.acknowledged += a.acknowledged
            t.returned += a.returned
            if a.closed_on_time is not None:
                t.due += 1
                t.on_time += a.closed_on_time
            elif not (a.returned or a.escalated_away) and a.deadline is not None and a.deadline < now:
                t.due += 1
            if a.satisfaction:
                t.satisfaction_sum += a.satisfaction
                t.satisfaction_count += 1
    return sorted(tallies.values(), key=lambda t: t.department)


def department_score(t: DepartmentTally) -> float:
    parts = (
        wilson_lower(t.answered, t.asked),
        wilson_lower(t.on_time, t.due) if t.due else 0.5,
        wilson_lower(t.assignments - t.returned, t.assignments),
        satisfaction_component(t.satisfaction_sum, t.satisfaction_count),
    )
    return 100 * sum(parts) / len(parts)


@dataclasses.dataclass
class GridWorkerTally:
    grid_worker: str
    node: str
    reports: int = 0
    closed: int = 0
    satisfaction_sum: int = 0
    satisfaction_count: int = 0
    grids: Counter[str] = dataclasses.field(default_factory=Counter)


def grid_worker_tallies(cases: Iterable[pb.Case]) -> list[GridWorkerTally]:
    """Tallies per grid worker (reporter and node) of the cases reported through 网格员上报."""
    tallies: dict[tuple[str, str], GridWorkerTally] = {}
    for case in cases:
        if case.channel != GRID_CHANNEL or not case.reporter:
            continue
        key = (case.reporter, case.origin_node)
        t = tallies.setdefault(key, GridWorkerTally(*key))
        t.reports += 1
        t.closed += case.status in lifecycle.CLOSED_STATUSES
        t.grids[case.grid] += 1
        if case.status in (pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED):
            t.satisfaction_sum += case.evaluation.satisfaction
            t.satisfaction_count += 1
    return sorted(tallies.values(), key=lambda t: (t.node, t.grid_worker))


def grid_worker_scores(tallies: Sequence[GridWorkerTally], *, min_sample: int) -> list[float]:
    most = max((t.reports for t in tallies if t.reports >= min_sample), default=0)
    return [
        100
        * (
            0.4 * (t.reports / most if most else 0.0)
            + 0.3 * wilson_lower(t.closed, t.reports)
            + 0.3 * satisfaction_component(t.satisfaction_sum, t.satisfaction_count)
        )
        for t in tallies
    ]


@dataclasses.dataclass(frozen=True)
class Placing:
    score: float
    rank: int  # 0: not ranked
    list: str  # "red", "black" or ""


def place(
    names: Sequence[str], scores: Sequence[float], samples: Sequence[int], *, min_sample: int, list_size: int
) -> list[Placing]:
    """Competition ranks and 红/黑榜 membership, in the order given (see the module's text)."""
    rounded = [round(s, 2) for s in scores]
    ranked = [i for i in range(len(names)) if samples[i] >= min_sample]

    def competition(descending: bool) -> dict[int, int]:
        keyed = sorted(ranked, key=lambda i: ((-rounded[i] if descending else rounded[i]), names[i]))
        ranks: dict[int, int] = {}
        for position, i in enumerate(keyed, start=1):
            previous = keyed[position - 2] if position > 1 else None
            ranks[i] = ranks[previous] if previous is not None and rounded[previous] == rounded[i] else position
        return ranks

    best, worst = competition(True), competition(False)
    k = min(list_size, len(ranked) // 2)
    out = []
    for i in range(len(names)):
        if i not in best:
            out.append(Placing(scores[i], 0, ""))
            continue
        mark = "red" if best[i] <= k else "black" if worst[i] <= k else ""
        out.append(Placing(scores[i], best[i], mark))
    return out
