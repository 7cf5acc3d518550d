"""The soak from start to verdict: start the county, run the year under chaos, let it settle,
check, report."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.soak import checks
from bench.soak.calls import Nodes
from bench.soak.cases import CaseLedger, run_cases
from bench.soak.chaos import ChaosLog, run_chaos
from bench.soak.county import SimTime, SoakCounty, soak_topology
from bench.soak.joint import JointLedger, check_joint, run_joint_cases
from bench.soak.projects import ProjectLedger, check_projects, run_projects
from fengqiao.clock import CHINA_TZ

log = logging.getLogger(__name__)
RESULT_FILE = Path(__file__).resolve().parent.parent / "results" / "soak.json"
YEAR_START = dt.datetime(2026, 1, 1, tzinfo=CHINA_TZ)


def setup_estimate_s(centers: int) -> float:
    """How long starting ``centers`` servers and node processes takes here, roughly: the year's
    clock is set to begin then, and the load waits for it."""
    return 10.0 + 1.2 * centers


@dataclasses.dataclass(frozen=True)
class SoakConfig:
    """How big, how long and how rough the soak is."""

    minutes: float = 10.0
    towns: int = 5
    villages: int = 4
    cases_per_town: int = 3000
    joint_per_town: int = 8
    projects_per_town: int = 4
    chaos: bool = True
    chaos_interval_s: float = 6.0
    in_flight: int = 200
    seed: int = 20261122
    workdir: Path | None = None
    keep: bool = False

    @property
    def drain_s(self) -> float:
        return min(120.0, max(30.0, self.minutes * 60 * 0.15))

    @property
    def centers(self) -> int:
        return 1 + self.towns * (1 + self.villages)

    @property
    def load_s(self) -> float:
        """The load window: what the budget leaves after start-up, draining and checking."""
        return max(20.0, self.minutes * 60 - setup_estimate_s(self.centers) - self.drain_s - 60.0)


@dataclasses.dataclass
class Outcome:
    """Everything the report prints."""

    config: SoakConfig
    setup_s: float = 0.0
    load_s: float = 0.0
    drain_s: float = 0.0
    check_s: float = 0.0
    cases: CaseLedger | None = None
    joint: JointLedger | None = None
    projects: ProjectLedger | None = None
    chaos: ChaosLog | None = None
    county_events: int = 0
    figure_sets: int = 0
    problems: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(self.problems.values())


async def soak(config: SoakConfig) -> Outcome:
    """Run the soak; the county's processes are stopped whatever happens."""
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="fq-soak-"))
    outcome = Outcome(config)
    began = time.monotonic()
    speed = 365 * 86400 / config.load_s
    sim = SimTime(start=YEAR_START, wall_start=time.time() + setup_estimate_s(config.centers), speed=speed)
    county = await SoakCounty.create(soak_topology(config.towns, config.villages), workdir, sim)
    nodes = Nodes(county.addresses())
    try:
        await county.start_nodes()
        outcome.setup_s = time.monotonic() - began
        log.info("county of %d centers serving after %.1f s", len(county.nodes), outcome.setup_s)
        await _year(county, nodes, config, outcome)
        began = time.monotonic()
        await _check(county, nodes, outcome)
        outcome.check_s = time.monotonic() - began
    finally:
        await nodes.close()
        await county.close()
    if outcome.passed and not config.keep and config.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log.warning("the county's stores and logs are kept in %s", workdir)
    return outcome


async def _year(county: SoakCounty, nodes: Nodes, config: SoakConfig, outcome: Outcome) -> None:
    await asyncio.sleep(max(0.0, county.sim.wall_start - time.time()))  # 1 January, 00:00
    rng = random.Random(config.seed)
    stop_taking, stop_chaos = asyncio.Event(), asyncio.Event()
    now = lambda: county.sim.now(time.time())  # noqa: E731
    topology, load = county.topology, config.load_s
    began = time.monotonic()
    work = asyncio.gather(
        run_cases(
            nodes, topology, total=config.cases_per_town * config.towns, spread_s=load,
            rng=random.Random(rng.random()), stop=stop_taking, drain_s=config.drain_s, in_flight=config.in_flight,
        ),
        run_joint_cases(
            nodes, topology, per_town=config.joint_per_town, rng=random.Random(rng.random()),
            stop=stop_taking, spread_s=load * 0.9, now=now, drain_s=config.drain_s,
        ),
        run_projects(
            nodes, topology, per_town=config.projects_per_town, rng=random.Random(rng.random()),
            stop=stop_taking, spread_s=load * 0.9, now=now, drain_s=config.drain_s,
        ),
    )  # fmt: skip
    chaos = asyncio.create_task(
        run_chaos(county, rng=random.Random(rng.random()), stop=stop_chaos, mean_interval_s=config.chaos_interval_s)
        if config.chaos
        else _no_chaos()
    )
    try:
        await asyncio.sleep(load)
        stop_taking.set()
        stop_chaos.set()
        outcome.load_s = time.monotonic() - began
        outcome.chaos = await chaos
        await county.heal()
        outcome.cases, outcome.joint, outcome.projects = await work
        outcome.drain_s = time.monotonic() - began - outcome.load_s
    finally:
        for task in (work, chaos):
            task.cancel()
        await asyncio.gather(work, chaos, return_exceptions=True)


async def _no_chaos() -> ChaosLog:
    return ChaosLog()


async def _check(county: SoakCounty, nodes: Nodes, outcome: Outcome) -> None:
    assert outcome.cases is not None and outcome.joint is not None and outcome.projects is not None
    topology = county.topology
    urls = {code: county.database_url(code) for code in county.nodes}
    found = await checks.settled(topology, urls, outcome.cases, within_s=90)
    outcome.problems.update(checks.case_problems(topology, found, outcome.cases))
    logs = await checks.county_logs(urls[topology.county.code])
    outcome.county_events = sum(len(log) for log in logs)
    first = min((log[0].at.ToDatetime(tzinfo=dt.UTC) for log in logs if log), default=YEAR_START)
    periods = [*checks.months(first.astimezone(CHINA_TZ), county.sim.now(time.time()).astimezone(CHINA_TZ)), ""]
    problems, outcome.figure_sets = await checks.figure_problems(nodes, topology, logs, periods)
    outcome.problems["figures = recompute"] = problems
    outcome.problems["三联 joint cases"] = await check_joint(nodes, topology, outcome.joint)
    outcome.problems["四必评 projects"] = await check_projects(nodes, topology, outcome.projects)


def write_result(outcome: Outcome, path: Path = RESULT_FILE) -> None:
    """The figures of the run as one JSON object (``bench/results/soak.json``)."""
    cases = outcome.cases or CaseLedger()
    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(outcome.config).items()},
        "setup_s": round(outcome.setup_s, 1),
        "load_s": round(outcome.load_s, 1),
        "drain_s": round(outcome.drain_s, 1),
        "check_s": round(outcome.check_s, 1),
        "cases_taken_in": len(cases.case_of),
        "cases_archived": len(cases.archived),
        "cases_per_s": round(len(cases.case_of) / outcome.load_s, 2) if outcome.load_s else 0,
        "steps": dict(cases.steps),
        "county_events": outcome.county_events,
        "figure_sets_compared": outcome.figure_sets,
        "faults": dict(outcome.chaos.counts()) if outcome.chaos else {},
        "problems": {k: len(v) for k, v in outcome.problems.items()},
        "passed": outcome.passed,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
