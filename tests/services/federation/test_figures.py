"""The figures' arithmetic (pure): every rate and mean is a ratio that is 0 over nothing."""

from __future__ import annotations

from services.federation.figures import ratio


def test_a_ratio_of_nothing_is_zero() -> None:
    assert ratio(0, 0) == 0.0
    assert ratio(3, 4) == 0.75
