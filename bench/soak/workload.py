"""What the soak's workloads share: start items spread over the load window, run each
guarded (its record says where it stopped), and write at most once under chaos."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import grpc

from bench.soak.calls import TRANSIENT, GaveUp

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = tuple[float, Callable[[], Coroutine[Any, Any, None]]]


class Stuck(Exception):
    """What a step waits for did not come about in time."""


class Stepped(Protocol):
    step: str
    problem: str


def spread(count: int, spread_s: float, rng: random.Random) -> list[float]:
    """``count`` start times (seconds from now) evenly over ``spread_s``, each jittered in its slot."""
    slot = spread_s / max(count, 1)
    return [slot * (i + rng.uniform(0.1, 0.9)) for i in range(count)]


async def run_spread(jobs: list[Job], *, stop: asyncio.Event, drain_s: float) -> None:
    """Start each job at its time until ``stop`` is set; then let the started ones finish, but
    once ``stop`` is set for at most ``drain_s`` more, cancelling the rest (each job records
    where it stopped)."""
    loop = asyncio.get_running_loop()
    began, running = loop.time(), set[asyncio.Task[None]]()
    for at, job in sorted(jobs, key=lambda j: j[0]):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, began + at - loop.time()))
        if stop.is_set():
            break
        running.add(asyncio.create_task(job()))
    stopped = asyncio.create_task(_until_set(stop))
    pending = set(running)
    while pending and not stop.is_set():
        _done, pending = await asyncio.wait({*pending, stopped}, return_when=asyncio.FIRST_COMPLETED)
        pending.discard(stopped)
    if pending:
        _done, pending = await asyncio.wait(pending, timeout=drain_s)
    for task in (*pending, stopped):
        task.cancel()
    await asyncio.gather(*running, stopped, return_exceptions=True)


async def _until_set(event: asyncio.Event) -> None:
    await event.wait()


async def guarded(record: Stepped, body: Callable[[], Awaitable[None]]) -> None:
    """Run one workload item; whatever stops it is written into its record (never raised)."""
    try:
        await body()
    except asyncio.CancelledError:
        record.problem = f"drain timeout at step {record.step!r}"
        raise
    except Exception as exc:
        detail = f"{exc.code().name} {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
        record.problem = f"gave up at step {record.step!r}: {detail}"
        log.warning("%s", record.problem, exc_info=not isinstance(exc, GaveUp | Stuck | grpc.aio.AioRpcError))


async def write_once(
    call: Callable[[], Awaitable[T]], landed: Callable[[], Awaitable[T | None]], *, what: str, within_s: float
) -> T:
    """``call()`` with at most one effect: after a failure that may have committed, ``landed()``
    re-reads state (``None``: no effect) and only then is the call repeated. A refusal after
    such a failure (FAILED_PRECONDITION) may be the first attempt's own effect: look again."""
    loop = asyncio.get_running_loop()
    deadline, pause, unsure = loop.time() + within_s, 0.2, False
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code not in TRANSIENT and not (unsure and code == grpc.StatusCode.FAILED_PRECONDITION):
                raise
            unsure = True
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                pause = max(pause, 1.0)  # a slow first attempt may still commit: give it time first
            if loop.time() + pause > deadline:
                raise GaveUp(f"{what}: {code.name} {exc.details()}") from exc
        await asyncio.sleep(pause)
        found = await landed()
        if found is not None:
            return found
        pause = min(pause * 2, 2.0)


async def until(read: Callable[[], Awaitable[T | None]], ok: Callable[[T], bool], *, what: str, within_s: float) -> T:
    """Poll ``read()`` until what it gives satisfies ``ok``; ``Stuck`` after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + within_s, 0.1
    while True:
        found = await read()
        if found is not None and ok(found):
            return found
        if loop.time() + pause > deadline:
            raise Stuck(f"not within {within_s:.0f} s: {what}")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 1.0)
