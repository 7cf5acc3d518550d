"""Group commit for intake: submissions that arrive together are written in one transaction.

Each SubmitCase waits on a future; one writer task drains the queue, writes up to
``max_batch`` submissions with a handful of statements and one commit (one fsync), and answers
them all. Under light load a batch is a single submission, so latency does not suffer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.security.sealing import Keyring
from fengqiao.v1 import case_pb2
from services.intake import store

log = logging.getLogger(__name__)
Pending = tuple[store.Submission, "asyncio.Future[tuple[case_pb2.Case, bool]]"]


class IntakeWriter:
    """Batches submissions into transactions."""

    def __init__(
        self,
        *,
        db: Database,
        node_code: str,
        clock: Clock,
        key: Keyring,
        on_commit: Callable[[], None],
        max_batch: int = 256,
    ) -> None:
        self._db = db
        self._key = key
        self._node = node_code
        self._clock = clock
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._queue: list[Pending] = []
        self._ready = asyncio.Event()

    async def submit(self, submission: store.Submission) -> tuple[case_pb2.Case, bool]:
        """Queue a submission and wait until it is committed; returns the case and whether it was a retry."""
        future: asyncio.Future[tuple[case_pb2.Case, bool]] = asyncio.get_running_loop().create_future()
        self._queue.append((submission, future))
        self._ready.set()
        return await future

    async def run(self) -> None:
        """Write batches until cancelled; callers of a failed batch get its error."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._write(batch)

    async def _write(self, batch: list[Pending]) -> None:
        subs = [sub for sub, _ in batch]
        try:
            results = await self._write_all(subs)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if any(not duplicate for _, duplicate in results):
            self._on_commit()

    async def _write_all(self, subs: list[store.Submission]) -> list[tuple[case_pb2.Case, bool]]:
        now = self._clock.now()
        try:
            return await self._db.run(
                lambda s: store.submit_batch(s, submissions=subs, node_code=self._node, now=now, key=self._key)
            )
        except IntegrityError:
            if len(subs) == 1:  # a concurrent writer (another process) took the same request id first
                return await self._db.run(
                    lambda s: store.submit_batch(
                        s, submissions=subs, node_code=self._node, now=self._clock.now(), key=self._key
                    )
                )
            log.info("batch of %d hit a conflict; writing one by one", len(subs))
            results = []
            for sub in subs:
                results.extend(await self._write_all([sub]))
            return results
