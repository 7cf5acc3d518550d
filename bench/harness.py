"""The benchmark registry, the result record, the settings and the report.

This is the only module of ``bench`` that reads the environment (``FQ_BENCH_*``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "latest.jsonl"


class BenchSettings(BaseSettings):
    """Durations, counts and concurrency of the benchmarks (environment ``FQ_BENCH_*``)."""

    model_config = SettingsConfigDict(env_prefix="FQ_BENCH_", extra="ignore")

    seconds: float = Field(default=5.0, gt=0, description="measured duration of timed benchmarks")
    warmup_seconds: float = Field(default=1.0, ge=0, description="unmeasured load before measuring")
    concurrency: int = Field(default=16, ge=1, description="concurrent client workers (C)")
    events: int = Field(default=2000, ge=1, description="cases submitted by outbox_publish (N)")
    drain_timeout_s: float = Field(default=180.0, gt=0, description="how long to wait for the stream")
    profile_dir: Path | None = Field(default=None, description="cProfile the county server into here")
    escalation_rate: float = Field(default=200.0, gt=0, description="escalations/s of escalation_latency")
    county_year_cases: int = Field(default=100_000, ge=1000, description="cases of figures_county_year")
    county_year_backends: str = Field(default="sqlite,postgresql", description="databases of figures_county_year")
    county_year_key: str = Field(default="", description="reuse the filled databases of this key (a run before)")
    postgres_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias="DATABASE_URL",
        description="the PostgreSQL server figures_county_year creates its database on",
    )


@dataclasses.dataclass(frozen=True)
class Result:
    """One benchmark's figure and the baseline it is compared to."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    goal_ratio: float  # the ratio value / baseline_value the goal asks for
    better: Literal["higher", "lower"] = "higher"
    goal_value: float | None = None  # an absolute goal (in ``unit``) instead of a ratio

    @property
    def ratio(self) -> float:
        """``value / baseline_value`` (0 when the baseline is 0)."""
        return self.value / self.baseline_value if self.baseline_value else 0.0

    @property
    def goal(self) -> str:
        """The goal as a human string, e.g. ``≥ 0.5 × baseline``."""
        sign = "≥" if self.better == "higher" else "≤"
        if self.goal_value is not None:
            return f"{sign} {self.goal_value:g} {self.unit}"
        return f"{sign} {self.goal_ratio:g} × {self.baseline_name}"

    @property
    def met(self) -> bool:
        """Whether the value (absolute goal) or the ratio reaches the goal."""
        if self.goal_value is not None:
            return self.value >= self.goal_value if self.better == "higher" else self.value <= self.goal_value
        if self.better == "higher":
            return self.ratio >= self.goal_ratio
        return self.ratio <= self.goal_ratio

    def record(self, when: dt.datetime) -> dict[str, object]:
        """The benchmark JSON line (docs/ARCHITECTURE.md, *Public contracts*), exactly its keys."""
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "baseline_value": round(self.baseline_value, 3),
            "ratio": round(self.ratio, 4),
            "goal": self.goal,
            "better": self.better,
            "when": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }


Benchmark = Callable[[BenchSettings], "Result | list[Result] | Awaitable[Result | list[Result]]"]
REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[Benchmark], Benchmark]:
    """Register a benchmark (sync or async, taking the settings) under ``name``."""

    def register(fn: Benchmark) -> Benchmark:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return register


def run_one(name: str, settings: BenchSettings) -> list[Result]:
    """Run the benchmark ``name`` to completion (in a fresh event loop when async)."""
    outcome = REGISTRY[name](settings)
    if inspect.isawaitable(outcome):
        outcome = asyncio.run(_await(outcome))
    return outcome if isinstance(outcome, list) else [outcome]


async def _await(outcome: Awaitable[Result | list[Result]]) -> Result | list[Result]:
    return await outcome


def append_result(result: Result, path: Path = RESULTS_FILE) -> None:
    """Append the result's JSON line to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(result.record(dt.datetime.now(dt.UTC)), ensure_ascii=False)
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def run(names: list[str], settings: BenchSettings) -> int:
    """Run the named benchmarks, record and print them; 1 when one failed to run."""
    log.info("settings: %s", settings.model_dump())
    results: list[Result] = []
    failed: list[str] = []
    for name in names:
        log.info("running %s", name)
        try:
            produced = run_one(name, settings)
        except Exception:
            log.exception("benchmark %s failed", name)
            failed.append(name)
            continue
        for result in produced:
            append_result(result)
            results.append(result)
    print_table(results, failed)
    return 1 if failed else 0


def print_table(results: list[Result], failed: list[str]) -> None:
    """Print a readable table of the results (and the benchmarks that failed)."""
    header = ("benchmark", "value", "baseline", "baseline value", "ratio", "goal", "met")
    rows = [
        (
            r.name,
            f"{r.value:,.1f} {r.unit}",
            r.baseline_name,
            f"{r.baseline_value:,.1f} /s" if r.unit.endswith("/s") else f"{r.baseline_value:,.1f}",
            f"{r.ratio:.3f}",
            r.goal,
            "yes" if r.met else "NO",
        )
        for r in results
    ]
    rows += [(name, "FAILED", "", "", "", "", "NO") for name in failed]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print()
    for i, row in enumerate([header, *rows]):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\nresults appended to {RESULTS_FILE}")
