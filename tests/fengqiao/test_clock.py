"""The scaled clock of the soak: every process given the same settings tells the same time."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from pydantic import ValidationError

from fengqiao.clock import ScaledClock, SystemClock
from fengqiao.settings import NodeSettings
from harness.county import PERSONAL_DATA_KEY, TOKEN_SECRET

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def settings(**values: object) -> NodeSettings:
    base = {"node_code": "371702", "topology_file": "t.yaml", "token_secret": TOKEN_SECRET}
    return NodeSettings(**base, personal_data_key=PERSONAL_DATA_KEY, **values)  # type: ignore[arg-type]


def test_a_scaled_clock_runs_speed_times_faster_from_its_start() -> None:
    wall = time.time() - 10.0  # started ten wall seconds ago
    clock = ScaledClock(start=START, wall_start=wall, speed=8640.0)  # a day every ten seconds
    elapsed = clock.now() - START
    assert dt.timedelta(days=1) <= elapsed < dt.timedelta(days=1, hours=1)


def test_two_clocks_from_the_same_settings_agree_and_the_default_is_the_wall_clock() -> None:
    wall = time.time()
    a = settings(clock_speed=75000, clock_start=START, clock_wall_start=wall).clock()
    b = settings(clock_speed=75000, clock_start=START, clock_wall_start=wall).clock()
    assert abs((a.now() - b.now()).total_seconds()) < 75000 * 0.05
    assert isinstance(settings().clock(), SystemClock)


def test_a_clock_start_without_an_offset_is_refused() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        settings(clock_speed=10, clock_start=dt.datetime(2026, 1, 1))
