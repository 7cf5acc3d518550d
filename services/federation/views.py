"""Figures, rankings and alerts as ``fengqiao.v1`` messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fengqiao.v1 import common_pb2, federation_pb2
from services.federation import figures, rankings, warning
from services.federation.snapshot import Snapshot

_FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def rate(numerator: int, denominator: int) -> federation_pb2.Rate:
    return federation_pb2.Rate(
        numerator=numerator, denominator=denominator, value=figures.ratio(numerator, denominator)
    )


def mean(total: float, count: int) -> federation_pb2.Mean:
    return federation_pb2.Mean(sum=total, count=count, value=figures.ratio(total, count))


def node_stats(snap: Snapshot, code: str, *, include_children: bool) -> federation_pb2.NodeStats:
    """The figures of ``code`` (in the snapshot), and of its children when asked."""
    spec, tally, period = snap.nodes[code], snap.tallies[code], snap.period
    stats = federation_pb2.NodeStats(
        code=code,
        name=spec.name,
        tier=common_pb2.Tier.ValueType(spec.tier),
        period=period.label,
        received=tally.received,
        closed=tally.closed,
        overdue=tally.overdue,
        supervised=tally.supervised,
        escalated=tally.escalated,
        stale=snap.stale(code),
        stale_nodes=snap.stale_nodes(code),
        stale_after_seconds=int(snap.stale_after.total_seconds()),
    )
    for name, count in snap.contributed[code].items():
        setattr(stats, name, count)
    for name, (num, den, _) in figures.rates(tally).items():
        getattr(stats, name).CopyFrom(rate(num, den))
    for name, (total, count, _) in figures.means(tally).items():
        getattr(stats, name).CopyFrom(mean(total, count))
    stats.period_start.FromDatetime(period.start)
    stats.period_end.FromDatetime(min(period.end, _FAR))
    stats.generated_at.FromDatetime(snap.generated_at)
    latest = snap.latest[code]
    if latest is not None:
        stats.latest_event_at.FromDatetime(latest)
    if include_children:
        stats.children.extend(node_stats(snap, c.code, include_children=True) for c in snap.children(code))
    return stats


def department_standings(
    tallies: Sequence[rankings.DepartmentTally], *, min_sample: int, list_size: int
) -> list[federation_pb2.DepartmentStanding]:
    """Standings, ranked first by rank then name, the unranked after them by name."""
    placings = rankings.place(
        [t.department for t in tallies],
        [rankings.department_score(t) for t in tallies],
        [t.assignments for t in tallies],
        min_sample=min_sample,
        list_size=list_size,
    )
    out = [
        federation_pb2.DepartmentStanding(
            department=t.department,
            assignments=t.assignments,
            acknowledgement_rate=rate(t.answered, t.asked),
            on_time_rate=rate(t.on_time, t.due),
            return_rate=rate(t.returned, t.assignments),
            satisfaction=mean(t.satisfaction_sum, t.satisfaction_count),
            score=round(p.score, 2),
            rank=p.rank,
            list=p.list,
        )
        for t, p in zip(tallies, placings, strict=True)
    ]
    return sorted(out, key=lambda s: (s.rank == 0, s.rank, s.department))


def grid_worker_standings(
    tallies: Sequence[rankings.GridWorkerTally], *, min_sample: int, list_size: int
) -> list[federation_pb2.GridWorkerStanding]:
    scores = rankings.grid_worker_scores(tallies, min_sample=min_sample)
    placings = rankings.place(
        [f"{t.node}/{t.grid_worker}" for t in tallies],
        scores,
        [t.reports for t in tallies],
        min_sample=min_sample,
        list_size=list_size,
    )
    out = [
        federation_pb2.GridWorkerStanding(
            grid_worker=t.grid_worker,
            node=t.node,
            grid=t.grids.most_common(1)[0][0] if t.grids else "",
            reports=t.reports,
            closure_rate=rate(t.closed, t.reports),
            satisfaction=mean(t.satisfaction_sum, t.satisfaction_count),
            score=round(p.score, 2),
            rank=p.rank,
            list=p.list,
        )
        for t, p in zip(tallies, placings, strict=True)
    ]
    return sorted(out, key=lambda s: (s.rank == 0, s.rank, s.node, s.grid_worker))


def alerts(
    series: dict[tuple[str, str], list[int]],
    rule: warning.WarningRule,
    *,
    names: dict[str, str],
    start: dt.datetime,
    end: dt.datetime,
) -> list[federation_pb2.Alert]:
    """The alerts the daily series raise at their end, most significant first."""
    out = []
    for (area, category), counts in sorted(series.items()):
        signal = warning.evaluate_series(counts, rule)
        if signal is None:
            continue
        alert = federation_pb2.Alert(
            area=area,
            area_name=names[area],
            category=category,
            observed=signal.observed,
            expected=round(signal.expected, 3),
            ratio=round(signal.ratio, 3),
            p_value=signal.p_value,
            baseline_days=rule.baseline_days,
            message=(
                f"{names[area]}近{rule.recent_days}日受理“{category}”类案件 {signal.observed} 件，"
                f"为前{rule.baseline_days}日平均水平折算（{signal.expected:.1f} 件）的 {signal.ratio:.1f} 倍，请研判"
            ),
        )
        alert.window_start.FromDatetime(start)
        alert.window_end.FromDatetime(end)
        out.append(alert)
    return sorted(out, key=lambda a: (a.p_value, a.area, a.category))
