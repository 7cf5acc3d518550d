"""The database layer: a write whose caller gave up before its turn is never made, and a
query abandoned midway never makes later reads see the past."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlmodel import Session

from fengqiao.db import Database


async def test_a_write_cancelled_while_queued_is_not_made(database_url: Callable[[str], str]) -> None:
    db = Database(database_url("writer"))
    db.create_all()
    release, made = threading.Event(), []

    def slow(_: Session) -> str:
        release.wait(10)
        made.append("slow")
        return "slow"

    def queued(name: str) -> Callable[[Session], str]:
        def write(_: Session) -> str:
            made.append(name)
            return name

        return write

    try:
        first = asyncio.create_task(db.write(slow))
        await asyncio.sleep(0.1)  # the writer thread is now busy with ``slow``
        abandoned = asyncio.create_task(db.write(queued("abandoned")))
        kept = asyncio.create_task(db.write(queued("kept")))
        await asyncio.sleep(0.05)
        abandoned.cancel()  # as gRPC cancels a handler whose deadline passed
        release.set()
        assert await first == "slow" and await kept == "kept"
        assert made == ["slow", "kept"]
    finally:
        release.set()
        db.close()


async def test_a_query_abandoned_midway_does_not_pin_later_reads_to_the_past(
    database_url: Callable[[str], str],
) -> None:
    """In SQLite's WAL mode an unfinished statement keeps its connection's read snapshot; if a
    reader raises midway and its traceback is kept, the pooled connection must not go on
    answering from that snapshot after later commits (the soak's "refused as done, read as
    not done")."""
    db = Database(database_url("snapshot"))
    db.transaction(lambda s: s.execute(text("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, v INTEGER)")))
    db.transaction(lambda s: s.execute(text("INSERT INTO probe (id, v) VALUES (1, 0), (2, 0), (3, 0)")))
    kept: list[BaseException] = []

    def read_half(session: Session) -> None:
        rows = session.connection().execute(text("SELECT id FROM probe ORDER BY id"))
        for _row in rows:  # ``rows`` stays in the frame, which the traceback keeps
            raise ValueError("a reader that fails midway")

    def read_v(session: Session) -> int:
        return int(session.execute(text("SELECT v FROM probe WHERE id = 1")).scalar_one())

    try:
        try:
            await db.run(read_half)
        except ValueError as exc:
            kept.append(exc)  # its traceback keeps the frame, and the frame the cursor

        # two reads at once, each holding its connection a while: the pool now has two to hand out
        def read_slowly(session: Session) -> None:
            read_v(session)
            threading.Event().wait(0.1)

        await asyncio.gather(db.read(read_slowly), db.read(read_slowly))
        for value in range(1, 4):
            await db.write(lambda s, v=value: s.execute(text("UPDATE probe SET v = :v"), {"v": v}))
            seen = [await db.run(read_v) for _ in range(4)] + list(
                await asyncio.gather(db.read(read_v), db.read(read_v))
            )
            assert seen == [value] * 6, f"after writing {value}, reads saw {seen}"
    finally:
        db.close()
