"""``make soak`` in miniature: two towns of one village each take cases in, escalate, run a
joint case and a project while the chaos driver kills processes and servers and cuts links;
every check of the full soak must pass (the full one is ``make soak``, ten minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak.__main__ import report
from bench.soak.run import SoakConfig, soak


@pytest.mark.slow
async def test_a_small_county_under_chaos_loses_nothing_and_its_figures_equal_a_recompute(tmp_path: Path) -> None:
    config = SoakConfig(
        minutes=1.6, towns=2, villages=1, cases_per_town=80, joint_per_town=1, projects_per_town=1,
        chaos_interval_s=2.5, workdir=tmp_path / "soak",
    )  # fmt: skip
    outcome = await soak(config)
    text = report(outcome)
    assert outcome.passed, text
    assert outcome.cases is not None and outcome.chaos is not None
    assert len(outcome.cases.archived) == len(outcome.cases.case_of) > 40, text
    assert outcome.cases.escalations > 0 and outcome.figure_sets > 0, text
    assert len(outcome.chaos.faults) >= 3, text
    assert set(outcome.problems) >= {"no case lost", "no duplicate", "one holder per case", "figures = recompute"}
