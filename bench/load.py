"""The load generator every benchmark and baseline shares: C workers awaiting one call each."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Call = Callable[[], Awaitable[object]]


@dataclasses.dataclass(frozen=True)
class Load:
    """What a run of workers achieved."""

    measured: int  # calls completed inside the measured window
    seconds: float  # length of the measured window
    completed: int  # calls completed successfully overall (warm-up and tail included)
    errors: int  # calls that raised

    @property
    def rate(self) -> float:
        """Calls per second inside the window."""
        return self.measured / self.seconds if self.seconds > 0 else 0.0


class _Counter:
    def __init__(self) -> None:
        self.completed = 0
        self.errors = 0

    async def call(self, call: Call) -> bool:
        try:
            await call()
        except Exception as exc:
            self.errors += 1
            if self.errors <= 3:
                log.warning("call failed: %r", exc)
            return False
        self.completed += 1
        return True


async def for_duration(call: Call, *, concurrency: int, seconds: float, warmup_s: float) -> Load:
    """Run ``concurrency`` workers for ``warmup_s + seconds``; count completions in the last
    ``seconds`` only."""
    loop = asyncio.get_running_loop()
    counter = _Counter()
    start = loop.time() + warmup_s
    end = start + seconds
    measured = 0

    async def worker() -> None:
        nonlocal measured
        while loop.time() < end:
            ok = await counter.call(call)
            if ok and start <= loop.time() < end:
                measured += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Load(measured=measured, seconds=seconds, completed=counter.completed, errors=counter.errors)


async def for_count(call: Call, *, concurrency: int, count: int) -> Load:
    """Make ``count`` calls with ``concurrency`` workers; the window is first call to last reply."""
    loop = asyncio.get_running_loop()
    counter = _Counter()
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await counter.call(call)

    began = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = loop.time() - began
    return Load(measured=counter.completed, seconds=elapsed, completed=counter.completed, errors=counter.errors)
