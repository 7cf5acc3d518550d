"""The database engine: SQLite (WAL) at the edge, PostgreSQL at the county.

The schema is made and upgraded by the migrations (``fengqiao.migrations``), before a node opens
its ``Database``. Store code is synchronous SQLModel; ``Database.run`` executes it in a worker thread inside one
transaction so the asyncio servers never block on I/O. SQLite gets a single writer thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from fengqiao.errors import FengqiaoError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = tuple[Callable[[Session], Any], contextvars.Context, "asyncio.Future[Any]"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The wait first: switching to WAL needs a lock another process may hold (several start at once).
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed case survives power loss too (the edge runs on small boxes).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def engine_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it: ``postgresql://`` means psycopg 3."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings this project relies on."""
    if url.startswith("sqlite"):
        engine = sqlalchemy.create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sqlalchemy.create_engine(engine_url(url), pool_size=8, max_overflow=4, pool_pre_ping=True)


class Database:
    """One node's database: an engine plus the threads that talk to it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        # SQLite has one writer: one thread writes, two more read (WAL lets readers run alongside).
        self._executor = ThreadPoolExecutor(max_workers=1 if self.is_sqlite else 8, thread_name_prefix="fq-db")
        self._jobs: list[Job] = []
        self._jobs_ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._readers = (
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="fq-db-read") if self.is_sqlite else self._executor
        )

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one transaction, committing on success (blocking)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                return fn(session)
        except OperationalError as exc:
            raise Unavailable("数据库暂时不可用，请稍后重试") from exc

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one transaction on the database's writer thread(s)."""
        return await self._on(self._executor, fn)

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read-only ``fn`` without queueing behind writes (SQLite: a reader thread)."""
        return await self._on(self._readers, fn)

    async def _on(self, executor: ThreadPoolExecutor, fn: Callable[[Session], T]) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # keeps the trace context for SQL spans
        call = functools.partial(ctx.run, self.transaction, fn)
        return await loop.run_in_executor(executor, call)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run a short write ``fn`` with group commit: writes queued together share one
        transaction (one commit, one fsync). A domain error (``FengqiaoError``) fails only its
        own ``fn``, so ``fn`` must raise those before it writes anything."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.append((fn, contextvars.copy_context(), future))
        self._jobs_ready.set()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_jobs())
        return await future

    async def _write_jobs(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._jobs_ready.wait()
            self._jobs_ready.clear()
            while self._jobs:
                jobs, self._jobs = self._jobs[:256], self._jobs[256:]
                # a write whose caller gave up (its gRPC deadline passed) is not made: under
                # overload, retries would otherwise queue behind the abandoned attempts
                jobs = [job for job in jobs if not job[2].cancelled()]
                if not jobs:
                    continue
                outcomes = await loop.run_in_executor(self._executor, self._run_jobs, jobs)
                for (_, _, future), (ok, value) in zip(jobs, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)

    def _run_jobs(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        def attempt(session: Session, fn: Callable[[Session], Any], ctx: contextvars.Context) -> tuple[bool, Any]:
            try:
                return True, ctx.run(fn, session)
            except FengqiaoError as exc:
                return False, exc

        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                return [attempt(session, fn, ctx) for fn, ctx, _ in jobs]
        except Exception:
            log.debug("a group of %d writes failed together; writing each on its own", len(jobs))
        outcomes: list[tuple[bool, Any]] = []
        for fn, ctx, _ in jobs:  # one failed the shared transaction: each on its own
            try:
                outcomes.append((True, self.transaction(lambda s, f=fn, c=ctx: c.run(f, s))))  # type: ignore[misc]
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self._executor.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
