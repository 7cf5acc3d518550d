"""``python -m bench.soak``: a year of a county under chaos; exit status 0 when every check passes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from bench.soak.run import Outcome, SoakConfig, soak, write_result


def parse(argv: list[str] | None) -> SoakConfig:
    d = SoakConfig()
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=d.minutes, help="the whole run's budget (default %(default)s)")
    p.add_argument("--towns", type=int, default=d.towns)
    p.add_argument("--villages", type=int, default=d.villages, help="villages per town")
    p.add_argument("--cases-per-town", type=int, default=d.cases_per_town, help="the year's cases per town")
    p.add_argument("--joint-per-town", type=int, default=d.joint_per_town, help="三联 joint cases opened per town")
    p.add_argument("--projects-per-town", type=int, default=d.projects_per_town, help="四必评 projects per town")
    p.add_argument("--no-chaos", dest="chaos", action="store_false", help="no kills, no cut links")
    p.add_argument("--chaos-interval", type=float, default=d.chaos_interval_s, help="mean seconds between faults")
    p.add_argument("--in-flight", type=int, default=d.in_flight, help="most cases under way at once")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workdir", type=Path, help="keep the county's stores and logs here")
    p.add_argument("--keep", action="store_true", help="keep the temporary workdir even when all passes")
    a = p.parse_args(argv)
    return SoakConfig(
        minutes=a.minutes, towns=a.towns, villages=a.villages, cases_per_town=a.cases_per_town,
        joint_per_town=a.joint_per_town, projects_per_town=a.projects_per_town, chaos=a.chaos,
        chaos_interval_s=a.chaos_interval, in_flight=a.in_flight, seed=a.seed, workdir=a.workdir, keep=a.keep,
    )  # fmt: skip


def report(o: Outcome) -> str:
    """The soak's figures and verdict as a few readable lines."""
    c = o.config
    cases, chaos = o.cases, o.chaos
    assert cases is not None
    taken, target = len(cases.case_of), c.cases_per_town * c.towns
    steps = sum(v for k, v in cases.steps.items() if k != "escalated")
    lines = [
        f"soak: {c.towns} towns × {c.villages} villages, {c.minutes:g} min budget, seed {c.seed}",
        f"  start-up {o.setup_s:.1f} s · load {o.load_s:.1f} s (a year) · drain {o.drain_s:.1f} s"
        f" · checks {o.check_s:.1f} s",
        f"  cases taken in   {taken:>7,} of {target:,} ({taken / o.load_s:.1f}/s); archived {len(cases.archived):,}",
        f"  lifecycle steps  {steps:>7,} ({steps / max(o.load_s + o.drain_s, 1):.1f}/s); "
        f"escalations {cases.escalations:,}; unknown outcomes resolved by re-reading {cases.retried_unknown:,}",
        f"  county's events  {o.county_events:>7,}; figure sets compared {o.figure_sets:,}",
    ]
    if o.joint is not None and o.projects is not None:
        lines.append(f"  三联 joint cases  {o.joint.summary()}; 四必评 projects {o.projects.summary()}")
    if chaos is not None:
        counts = chaos.counts()
        lines.append(
            f"  chaos            {len(chaos.faults)} faults: {counts['kill_node']} node processes SIGKILLed, "
            f"{counts['kill_server']} nats-servers SIGKILLed, {counts['cut_link']} links cut"
        )
    lines.append("  checks:")
    for name, problems in o.problems.items():
        mark = "ok  " if not problems else "FAIL"
        lines.append(f"    {mark} {name}" + (f": {len(problems)} problems" if problems else ""))
        lines += [f"           {p}" for p in problems[:8]]
    lines.append("soak PASSED" if o.passed else "soak FAILED")
    return "\n".join(lines)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # asyncio.run then cancels the soak, which stops every process it started


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    outcome = asyncio.run(soak(config))
    write_result(outcome)
    print(report(outcome), flush=True)
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
