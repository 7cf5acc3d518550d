"""研判预警 (pure): a category rising well above its own trailing baseline in an area.

For each area (a village, or a town or county over its whole subtree) and category, the daily
counts of cases received are split into a **recent window** (the last ``recent_days`` local
days, today included) and the **baseline** (the ``baseline_days`` before it). Under "nothing
changed" the recent count is Poisson with mean

    expected = (baseline count + ½) / baseline_days × recent_days

(the half case keeps an empty baseline from making any single case look infinite). Both counts
being Poisson, the significance is the exact conditional test of equal daily rates: given the
n cases of window and baseline together, the window's count is Binomial(n, recent_days /
(recent_days + baseline_days)), so the noise of the baseline is accounted for too. An alert is
raised when all three hold: the upper tail P(X ≥ observed | n) < ``alpha``; observed ≥
``min_count`` (a rise from 1 to 3 cases is not a trend); observed ≥ ``min_ratio`` × expected
(statistically clear but small rises in busy areas are not news). The area's own history is the
baseline, so a busy town is not flagged for being busy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from fengqiao.clock import CHINA_TZ
from fengqiao.divisions import is_within


@dataclasses.dataclass(frozen=True)
class WarningRule:
    """The knobs of the method (see the module's text)."""

    recent_days: int = 7
    baseline_days: int = 28
    alpha: float = 0.002
    min_count: int = 5
    min_ratio: float = 2.0


@dataclasses.dataclass(frozen=True)
class Signal:
    observed: int
    expected: float
    ratio: float
    p_value: float


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = (
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(k, n + 1)
    )
    return min(1.0, math.fsum(terms))


def evaluate(recent: int, baseline: int, rule: WarningRule) -> Signal | None:
    """The alert for ``recent`` cases in the window after ``baseline`` cases, if any."""
    expected = (baseline + 0.5) / rule.baseline_days * rule.recent_days
    ratio = recent / expected
    if recent < rule.min_count or ratio < rule.min_ratio:
        return None
    share = rule.recent_days / (rule.recent_days + rule.baseline_days)
    p_value = binomial_upper_tail(recent, recent + baseline, share)
    return Signal(recent, expected, ratio, p_value) if p_value < rule.alpha else None


def evaluate_series(series: Sequence[int], rule: WarningRule) -> Signal | None:
    """The alert at the end of a daily series (oldest first), if any; needs the full history."""
    if len(series) < rule.recent_days + rule.baseline_days:
        return None
    recent = sum(series[len(series) - rule.recent_days :])
    base_end = len(series) - rule.recent_days
    return evaluate(recent, sum(series[base_end - rule.baseline_days : base_end]), rule)


def scan(series: Sequence[int], rule: WarningRule) -> list[int]:
    """The days (indices) on which an alert would be raised, evaluating at the end of each day."""
    return [day for day in range(len(series)) if evaluate_series(series[: day + 1], rule) is not None]


def local_day(when: dt.datetime) -> dt.date:
    return when.astimezone(CHINA_TZ).date()


def window(at: dt.datetime, rule: WarningRule) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(baseline start, recent start, recent end) in local days, the recent window ending with
    the day of ``at``."""
    day = local_day(at)
    end = dt.datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ) + dt.timedelta(days=1)
    recent_start = end - dt.timedelta(days=rule.recent_days)
    return recent_start - dt.timedelta(days=rule.baseline_days), recent_start, end


def daily_series(
    cases: Iterable[tuple[str, str, dt.datetime]], *, areas: Sequence[str], first_day: dt.date, days: int
) -> dict[tuple[str, str], list[int]]:
    """Daily counts per (area, category) of (origin, category, received_at) cases; an area
    counts every case taken in at or below it."""
    series: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * days)
    for origin, category, received_at in cases:
        index = (local_day(received_at) - first_day).days
        if not 0 <= index < days:
            continue
        for area in areas:
            if is_within(origin, area):
                series[(area, category)][index] += 1
    return dict(series)
