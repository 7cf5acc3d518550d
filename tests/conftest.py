"""Fixtures with real parts: nats-server on a random port, SQLite files and PostgreSQL databases."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devtools.natsserver import NatsServer
from fengqiao.clock import Clock, FakeClock
from harness.county import LocalCounty, small_county

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() == "true"
SPANS = InMemorySpanExporter()


def pytest_configure(config: pytest.Config) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    SPANS.clear()
    yield SPANS


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a random loopback port."""
    server = NatsServer(store_dir=tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, empty databases (one per name) of the parametrised kind."""
    if request.param == "sqlite":
        yield lambda name: f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    problem = _postgres_available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    prefix = f"fqt_{uuid.uuid4().hex[:10]}"
    created: list[str] = []

    def make(name: str) -> str:
        db = f"{prefix}_{name}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        created.append(db)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"

    try:
        yield make
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for db in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def running_county(
    tmp_path: Path,
    nats_url: str,
    database_url: Callable[[str], str],
    *codes: str,
    clock: Clock | None = None,
    **shape: int,
) -> AsyncIterator[LocalCounty]:
    """A sample county with the named nodes (all when none) running in this process."""
    memo: dict[str, str] = {}

    def url(code: str) -> str:
        if code not in memo:
            memo[code] = database_url(code)
        return memo[code]

    local = LocalCounty(small_county(**shape), tmp_path / "county", nats_url, url, clock=clock)
    await local.start(*codes)
    try:
        yield local
    finally:
        await local.stop()


@pytest.fixture
async def county(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> AsyncIterator[LocalCounty]:
    """A running county: 1 county, 2 towns, 2 villages each, all in this process."""
    async with running_county(tmp_path, nats_server.url, database_url) as local:
        yield local


@pytest.fixture
async def village(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> AsyncIterator[LocalCounty]:
    """Only the village 371702101001 running (its town and county are in the topology, not started)."""
    async with running_county(tmp_path, nats_server.url, database_url, "371702101001", towns=1, villages=1) as local:
        yield local


@pytest.fixture
async def chain(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> AsyncIterator[LocalCounty]:
    """One village, its town and the county, all running, on one FakeClock."""
    async with running_county(tmp_path, nats_server.url, database_url, clock=FakeClock(), towns=1, villages=1) as local:
        yield local


@pytest.fixture
async def chain_manual(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LocalCounty]:
    """Like ``chain``, but centers leave escalations to their operators (no automatic acceptance)."""
    monkeypatch.setenv("FQ_ROUTING_AUTO_ACCEPT_ESCALATIONS", "false")
    async with running_county(tmp_path, nats_server.url, database_url, clock=FakeClock(), towns=1, villages=1) as local:
        yield local
