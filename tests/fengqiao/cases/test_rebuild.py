"""``fengqiao figures rebuild``: every fact row recomputed from the event logs, resumable, with a
progress line; a database it cannot use is named in a Chinese refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from fengqiao import migrations
from fengqiao.cases import rebuild
from fengqiao.db import make_engine
from host import cli

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "previous_release.db"


def facts(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return {
                t: sorted(tuple(r) for r in c.execute(text(f"SELECT * FROM {t}")))
                for t in ("case_fact", "assignment_fact", "call_fact")
            }
    finally:
        engine.dispose()


@pytest.fixture
def upgraded(tmp_path: Path) -> str:
    shutil.copy(FIXTURE, tmp_path / "town.db")
    url = f"sqlite:///{tmp_path / 'town.db'}"
    migrations.upgrade(url)
    return url


def test_rebuild_recomputes_every_fact_with_a_progress_line(upgraded: str, capsys: pytest.CaptureFixture[str]) -> None:
    kept = facts(upgraded)
    assert len(kept["case_fact"]) == 19 and kept["assignment_fact"]
    engine = make_engine(upgraded)
    with engine.begin() as c:
        c.execute(text("DELETE FROM assignment_fact"))
        c.execute(text("UPDATE case_fact SET closed = 0, on_time = 0"))
    engine.dispose()
    assert facts(upgraded) != kept
    assert cli.main(["figures", "rebuild", "--database", upgraded, "--batch", "4"]) == 0
    out, err = capsys.readouterr()
    assert "统计事实已重算：19 件" in out
    assert "重算统计事实：8 / 19 件（42%）" in err and "19 / 19 件（100%）" in err
    assert facts(upgraded) == kept


def test_an_interrupted_rebuild_goes_on_from_where_it_stopped(
    upgraded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = facts(upgraded)
    engine = make_engine(upgraded)
    with engine.begin() as c:
        c.execute(text("DELETE FROM case_fact"))
        c.execute(text("DELETE FROM assignment_fact"))
        c.execute(text("INSERT INTO counter (name, value) VALUES (:n, 12)"), {"n": rebuild.REBUILD_COUNTER})
    seen: list[rebuild.Progress] = []
    done = rebuild.rebuild(engine.begin, batch=5, progress=seen.append)
    assert seen[0] == rebuild.Progress(12, 19) and done == rebuild.Progress(19, 19)
    assert len(facts(upgraded)["case_fact"]) == 7  # only the cases after the twelfth were redone
    with engine.begin() as c:
        assert rebuild.rebuild_done(c) == 0  # finished: the next one starts from the first case
    engine.dispose()
    assert cli.main(["figures", "rebuild", "--database", upgraded]) == 0
    assert "统计事实已重算：19 件" in capsys.readouterr().out
    assert facts(upgraded) == kept


def test_rebuild_names_a_database_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert cli.main(["figures", "rebuild", "--database", url]) == 1
    assert "统计事实重算失败：数据库错误 OperationalError（再次运行将从中断处继续）" in capsys.readouterr().err
