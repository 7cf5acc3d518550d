"""Injectable clocks: services take a ``Clock`` so time can be driven in tests."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ScaledClock:
    """Time running ``speed`` times faster than the wall clock, from ``start`` at wall time
    ``wall_start`` (Unix seconds). Every process given the same three values tells the same
    time, across restarts: the soak replays a year in minutes with it."""

    def __init__(self, *, start: dt.datetime, wall_start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start
        self._wall_start = wall_start
        self._speed = speed

    def now(self) -> dt.datetime:
        elapsed = (time.time() - self._wall_start) * self._speed
        return self._start + dt.timedelta(seconds=elapsed)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta) -> None:
        self._now += delta

    def set(self, when: dt.datetime) -> None:
        self._now = when


CHINA_TZ = dt.timezone(dt.timedelta(hours=8), name="CST")
"""China Standard Time: days, months and receipt numbers follow the local calendar."""
