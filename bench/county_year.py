"""``figures_county_year``: a county-year of cases answered over HTTP (issue 21).

A county of 25 towns × 4 villages holding ``FQ_BENCH_COUNTY_YEAR_CASES`` (100,000) cases over
2026, filled through the real store once and cached (``bench.county_fill``), on SQLite and on
PostgreSQL (the server of ``DATABASE_URL``, else the local one). The county node runs in this
process over that database; measured, each the median of ``ROUNDS`` calls after two unmeasured
ones, over HTTP at the county:

- ``year``: ``GET /api/v1/nodes/{county}/stats?period=2026`` (goal ≤ 100 ms);
- ``month``: the same for ``2026-06`` (≤ 30 ms);
- ``rankings``: ``GET /api/v1/rankings/departments?period=2026Q2`` (≤ 100 ms);
- ``cases_page``: ``GET /api/v1/cases`` by category, the second page by its cursor (≤ 50 ms);
- ``report_xlsx``: the 月报 XLSX of ``2026-06`` (≤ 1,000 ms);
- ``sql_ratio``: the year's figures of every node computed in SQL (``snapshot.take``, no HTTP)
  over the raw ``GROUP BY origin_node, status`` count of the same rows (goal ≤ 1.5).

Each line's baseline is that raw ``GROUP BY`` count over the period's rows, in the same run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlalchemy import select as sa_select

from bench import county_fill
from bench.harness import BenchSettings, Result, benchmark
from devtools.natsserver import NatsServer
from fengqiao.cases.records import CaseRecord
from fengqiao.db import Database
from harness.county import ADMIN_PASSWORD, LocalCounty
from host.node import figure_sources
from services.federation import rules, snapshot

log = logging.getLogger(__name__)
ROUNDS = 21
COUNTY = county_fill.COUNTY
GOALS_MS = {"year": 100.0, "month": 30.0, "rankings": 100.0, "cases_page": 50.0, "report_xlsx": 1000.0}
PERIODS = {"year": "2026", "month": "2026-06", "rankings": "2026Q2", "cases_page": "2026", "report_xlsx": "2026-06"}
SQL_RATIO_GOAL = 1.5


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def p50(call: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> float:
    """The median duration of ``call`` in ms, after two unmeasured calls."""
    for _ in range(2):
        await call()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return median_ms(samples)


def raw_group_by_ms(db: Database, period: rules.Period) -> float:
    """The raw SQL baseline: a count by origin and status of the period's cases, median ms."""
    table = CaseRecord.__table__  # type: ignore[attr-defined]
    query = (
        sa_select(table.c.origin_node, table.c.status, func.count())
        .where(
            table.c.origin_node.startswith(COUNTY),
            table.c.received_at >= period.start.astimezone(dt.UTC),
            table.c.received_at < period.end.astimezone(dt.UTC),
        )
        .group_by(table.c.origin_node, table.c.status)
    )
    samples = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        db.transaction(lambda s: s.connection().execute(query).all())
        samples.append(time.perf_counter() - t0)
    return median_ms(samples)


def sql_figures_ms(db: Database, period: rules.Period) -> float:
    """The year's figures of every node of the county, computed as the service does, no HTTP."""
    sources = figure_sources()
    now = dt.datetime.now(dt.UTC)
    samples = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        db.transaction(
            lambda s: snapshot.take(
                s,
                topology=county_fill.TOPOLOGY,
                code=COUNTY,
                period=period,
                now=now,
                stale_after=dt.timedelta(hours=48),
                sources=sources,
            )
        )
        samples.append(time.perf_counter() - t0)
    return median_ms(samples)


async def over_http(db: Database) -> dict[str, float]:
    """The county node over ``db``; the median ms of each request."""
    with tempfile.TemporaryDirectory(prefix="fq-bench-year-") as tmp:
        nats = NatsServer(store_dir=Path(tmp) / "nats").start()
        county = LocalCounty(county_fill.TOPOLOGY, Path(tmp) / "county", nats.url, lambda code: db.url)
        try:
            await county.start(COUNTY, grpc_call_timeout_s=300.0)  # the figures before this work took seconds
            base = f"http://127.0.0.1:{county[COUNTY].http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
                client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

                async def get(path: str, **params: str) -> httpx.Response:
                    reply = await client.get(path, params=params)
                    reply.raise_for_status()
                    return reply

                stats = f"/api/v1/nodes/{COUNTY}/stats"
                first = (await get("/api/v1/cases", category=county_fill.CATEGORIES[0])).json()
                token = first["next_page_token"]
                assert len(first["items"]) == 50 and token
                return {
                    "year": await p50(lambda: get(stats, period=PERIODS["year"])),
                    "month": await p50(lambda: get(stats, period=PERIODS["month"])),
                    "rankings": await p50(lambda: get("/api/v1/rankings/departments", period=PERIODS["rankings"])),
                    "cases_page": await p50(
                        lambda: get("/api/v1/cases", category=county_fill.CATEGORIES[0], page_token=token)
                    ),
                    "report_xlsx": await p50(
                        lambda: get("/api/v1/reports/monthly", period=PERIODS["report_xlsx"], format="xlsx")
                    ),
                }
        finally:
            await county.stop()
            nats.stop()


def measure(db: Database, kind: str) -> list[Result]:
    periods = {name: rules.parse_period(text) for name, text in PERIODS.items()}
    raw = {name: raw_group_by_ms(db, p) for name, p in periods.items()}
    ours = sql_figures_ms(db, periods["year"])
    http = asyncio.run(over_http(db))
    results = [
        Result(
            name=f"figures_county_year.{name}.{kind}",
            value=value,
            unit="ms",
            baseline_name=f"raw GROUP BY of {PERIODS[name]}",
            baseline_value=raw[name],
            goal_ratio=0.0,
            better="lower",
            goal_value=GOALS_MS[name],
        )
        for name, value in http.items()
    ]
    results.append(
        Result(
            name=f"figures_county_year.sql_ratio.{kind}",
            value=ours / raw["year"],
            unit="",
            baseline_name="raw GROUP BY = 1",
            baseline_value=1.0,
            goal_ratio=0.0,
            better="lower",
            goal_value=SQL_RATIO_GOAL,
        )
    )
    log.info("%s: figures in SQL %.1f ms, raw GROUP BY %.1f ms; over HTTP %s", kind, ours, raw["year"], http)
    return results


@benchmark("figures_county_year")
def figures_county_year(settings: BenchSettings) -> list[Result]:
    """A county-year's figures, rankings, case page and 月报 over HTTP, SQLite and PostgreSQL."""
    results = []
    wanted = settings.county_year_backends.split(",")
    for kind, admin in (("sqlite", None), ("postgresql", settings.postgres_url)):
        if kind not in wanted:
            continue
        db = county_fill.filled(settings.county_year_cases, postgres_admin=admin, key=settings.county_year_key)
        try:
            results += measure(db, kind)
        finally:
            db.close()
    return results
