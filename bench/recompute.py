"""The figures (docs/ARCHITECTURE.md, *Figures*) recomputed from raw events, written apart from the service's code:
the oracle of the figure tests and of the soak."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fengqiao.cases import lifecycle
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2, federation_pb2
from services.federation.rules import Period


def expected(
    logs: Sequence[Sequence[pb.CaseEvent]], code: str, period: Period, *, now: dt.datetime
) -> dict[str, object]:
    """The figures of ``code``, straight from folding the raw events (independent of the service)."""
    return expected_of([lifecycle.fold(log) for log in logs], code, period, now=now)


def expected_of(cases: Sequence[pb.Case | None], code: str, period: Period, *, now: dt.datetime) -> dict[str, object]:
    """``expected`` from cases already folded (to fold a county's logs once for many figures)."""
    mine = [
        c
        for c in cases
        if c is not None
        and c.origin_node.startswith(code)
        and period.start <= c.received_at.ToDatetime(tzinfo=dt.UTC) < period.end
    ]
    done = [c for c in mine if c.status in (8, 9, 10)]  # 办结, 回访, 归档
    followed = [c for c in done if c.status in (9, 10)]
    return {
        "received": len(mine),
        "closed": len(done),
        "on_time": sum(c.closed_at.ToDatetime() <= c.deadline.ToDatetime() for c in done),
        "mediated": sum(c.feedback.mediated for c in done),
        "followed_up": len(followed),
        "satisfaction_sum": sum(c.evaluation.satisfaction for c in followed),
        "at_village": sum(c.resolved_tier == common_pb2.TIER_VILLAGE for c in done),
        "at_or_below_town": sum(c.resolved_tier != common_pb2.TIER_COUNTY for c in done),
        "at_county": sum(len(c.holder_node) == 6 and len(c.origin_node) > 6 for c in mine),
        "overdue": sum(
            c.status not in (8, 9, 10) and c.HasField("deadline") and c.deadline.ToDatetime(tzinfo=dt.UTC) < now
            for c in mine
        ),
        "supervised": sum(c.supervisions > 0 for c in mine),
        "escalated": sum(c.escalations > 0 for c in mine),
        "handling_seconds": sum(
            round((c.closed_at.ToDatetime() - c.received_at.ToDatetime()).total_seconds()) for c in done
        ),
    }


def observed(s: federation_pb2.NodeStats) -> dict[str, object]:
    return {
        "received": s.received,
        "closed": s.closed,
        "on_time": s.on_time_rate.numerator,
        "mediated": s.mediation_success_rate.numerator,
        "followed_up": s.follow_up_rate.numerator,
        "satisfaction_sum": int(s.satisfaction.sum),
        "at_village": s.resolved_at_village.numerator,
        "at_or_below_town": s.resolved_at_or_below_town.numerator,
        "at_county": s.escalated_to_county.numerator,
        "overdue": s.overdue,
        "supervised": s.supervised,
        "escalated": s.escalated,
        "handling_seconds": round(s.handling_hours.sum * 3600),
    }
