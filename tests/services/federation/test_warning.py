"""研判预警 on synthetic daily series with known change points."""

from __future__ import annotations

import math
import random

import pytest

from services.federation.warning import WarningRule, binomial_upper_tail, evaluate, evaluate_series, scan

RULE = WarningRule()


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method (fine for the small means of a village's daily counts)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def series(rng: random.Random, *, days: int, before: float, after: float, change: int) -> list[int]:
    return [poisson(rng, before if day < change else after) for day in range(days)]


def test_binomial_tail_matches_known_values() -> None:
    assert binomial_upper_tail(0, 10, 0.5) == 1.0 and binomial_upper_tail(11, 10, 0.5) == 0.0
    assert binomial_upper_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_upper_tail(8, 10, 0.5) == pytest.approx((45 + 10 + 1) / 1024)
    assert binomial_upper_tail(1, 5, 0.2) == pytest.approx(1 - 0.8**5)


def test_a_steady_level_raises_nothing_and_a_fourfold_week_does() -> None:
    flat = [1] * 35
    assert evaluate_series(flat, RULE) is None
    jump = [1] * 28 + [4] * 7
    signal = evaluate_series(jump, RULE)
    assert signal is not None and signal.observed == 28
    assert signal.expected == pytest.approx(28.5 / 28 * 7) and signal.ratio > 3.9


def test_small_counts_and_small_ratios_are_not_alerts() -> None:
    assert evaluate(4, 0, RULE) is None  # 4 cases after an empty month: below min_count
    assert evaluate(300, 800, RULE) is None  # clearly above 200 expected, but only 1.5 ×


def test_a_busy_area_is_judged_against_its_own_baseline() -> None:
    busy = [10] * 35
    assert evaluate_series(busy, RULE) is None


def first_alert_after(counts: list[int], change: int) -> tuple[int | None, list[int]]:
    alerts = scan(counts, RULE)
    later = [d for d in alerts if d >= change]
    return (later[0] - change if later else None), [d for d in alerts if d < change]


@pytest.mark.parametrize(("after", "within", "share"), [(3.0, 10, 0.8), (4.0, 7, 0.9), (5.0, 5, 0.9)])
def test_a_rise_is_detected_soon_after_its_change_point_and_never_before(
    after: float, within: int, share: float
) -> None:
    """50 series at 1 case a day that jump to ``after`` a day on day 60 (known change point)."""
    detected = 0
    for seed in range(50):
        counts = series(random.Random(seed), days=80, before=1.0, after=after, change=60)
        delay, early = first_alert_after(counts, 60)
        assert not early, f"seed {seed}: alert before the change point on days {early}"
        detected += delay is not None and delay < within
    assert detected >= share * 50, f"only {detected} of 50 rises to {after}/day detected within {within} days"


def test_stable_series_rarely_alarm() -> None:
    """100 series of 120 days at 2 cases a day, evaluated every day: at most 5 ever alarm."""
    false_alarms = sum(
        bool(scan(series(random.Random(1000 + seed), days=120, before=2.0, after=2.0, change=0), RULE))
        for seed in range(100)
    )
    assert false_alarms <= 5, f"{false_alarms} of 100 stable series raised an alert"
