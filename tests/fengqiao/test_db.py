"""The group-commit writer: a write whose caller gave up before its turn is never made."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from sqlmodel import Session

from fengqiao import migrations
from fengqiao.db import Database


async def test_a_write_cancelled_while_queued_is_not_made(database_url: Callable[[str], str]) -> None:
    db = Database(database_url("writer"))
    migrations.upgrade(db.url)
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
