"""The group-commit writer: a write whose caller gave up before its turn is never made."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy
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


def _upgrade(url: str, ready: Any, failures: Any) -> None:
    ready.wait()  # every process has imported everything: all migrate at the same moment
    try:
        migrations.upgrade(url)
    except Exception as exc:
        failures.put(repr(exc))


def test_processes_of_one_node_creating_the_tables_at_once_all_start(database_url: Callable[[str], str]) -> None:
    """Several processes of one node start together (the county runs its services apart); the
    one that creates the tables must not make the others fail with "table already exists"."""
    url = database_url("race")
    context = multiprocessing.get_context("spawn")
    ready, failures = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_upgrade, args=(url, ready, failures)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    problems = []
    while not failures.empty():
        problems.append(failures.get())
    assert problems == []
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    db = Database(url)
    try:
        tables = set(sqlalchemy.inspect(db.engine).get_table_names())
    finally:
        db.close()
    assert {"case_record", "case_event", "outbox", "audit_log", "app_user"} <= tables
