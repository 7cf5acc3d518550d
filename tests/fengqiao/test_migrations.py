"""Schema migrations on SQLite and PostgreSQL: the migrated schema is what the models declare, a
database made by ``create_all`` (the previous release) is adopted, several processes may upgrade
one database at once, and ``fengqiao db`` tells an operator where a database stands."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from fengqiao import migrations
from fengqiao.db import engine_url
from host.cli import main
from host.node import import_tables


def engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(engine_url(url), poolclass=sqlalchemy.pool.NullPool)


def differences(url: str) -> list[object]:
    """What the models declare beyond (or short of) the database at ``url``."""
    import_tables()
    eng = engine(url)
    try:
        with eng.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        eng.dispose()


def tables(url: str) -> set[str]:
    eng = engine(url)
    try:
        return set(sqlalchemy.inspect(eng).get_table_names())
    finally:
        eng.dispose()


def execute(url: str, *statements: str) -> None:
    eng = engine(url)
    try:
        with eng.begin() as conn:
            for statement in statements:
                conn.execute(sqlalchemy.text(statement))
    finally:
        eng.dispose()


def baseline_tables() -> sqlalchemy.MetaData:
    """The previous release's schema, as its ``create_all`` made it (frozen in the baseline)."""
    metadata: sqlalchemy.MetaData = migrations.scripts().get_revision(migrations.BASELINE).module.tables()
    return metadata


def test_the_migrated_schema_is_exactly_what_the_models_declare(database_url: Callable[[str], str]) -> None:
    """Fails when a model changes without a migration: add one (README, *Configuration*)."""
    url = database_url("schema")
    done = migrations.upgrade(url)
    assert (done.before, done.after, done.adopted) == (None, migrations.head(), False)
    assert differences(url) == []
    import_tables()
    assert tables(url) == set(SQLModel.metadata.tables) | {"alembic_version"}


def test_a_second_upgrade_changes_nothing(database_url: Callable[[str], str]) -> None:
    url = database_url("twice")
    migrations.upgrade(url)
    again = migrations.upgrade(url)
    assert not again.changed and not again.adopted and again.after == migrations.head()
    assert migrations.current(url) == migrations.head()


def test_a_database_made_by_create_all_is_adopted_with_its_rows(database_url: Callable[[str], str]) -> None:
    url = database_url("adopted")
    eng = engine(url)
    baseline_tables().create_all(eng)
    eng.dispose()
    execute(url, "INSERT INTO counter (name, value) VALUES ('receipt:371702', 41)")
    assert migrations.current(url) is None

    done = migrations.upgrade(url)

    assert done.adopted and done.before is None and done.after == migrations.head()
    assert differences(url) == []
    eng = engine(url)
    with eng.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT name, value FROM counter")).all() == [("receipt:371702", 41)]
    eng.dispose()


def test_a_database_holding_only_some_tables_gets_the_ones_it_lacks(database_url: Callable[[str], str]) -> None:
    """``fengqiao user add`` of the previous release made only the tables it imported."""
    url = database_url("partial")
    eng = engine(url)
    metadata = baseline_tables()
    metadata.tables["app_user"].create(eng)
    eng.dispose()
    execute(url, "INSERT INTO app_user VALUES ('admin', 'x', 'county_admin', '371702', '管理员')")

    done = migrations.upgrade(url)

    assert done.adopted
    assert tables(url) == set(metadata.tables) | {"alembic_version"}
    assert differences(url) == []


def test_a_database_of_another_application_is_refused(database_url: Callable[[str], str]) -> None:
    url = database_url("stranger")
    execute(url, "CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(migrations.SchemaError, match="不属于枫桥的表（invoices）"):
        migrations.upgrade(url)
    assert tables(url) == {"invoices"}  # nothing was created, not even alembic_version


def test_a_database_newer_than_the_code_is_refused(database_url: Callable[[str], str]) -> None:
    url = database_url("newer")
    migrations.upgrade(url)
    execute(url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(migrations.SchemaError, match="数据库结构版本 9999 比本程序新"):
        migrations.upgrade(url)


def test_the_history_is_one_line_from_the_baseline() -> None:
    history = migrations.history()
    assert history[0].revision == migrations.BASELINE and history[0].down_revision is None
    for older, newer in itertools.pairwise(history):
        assert newer.down_revision == older.revision
    assert history[-1].revision == migrations.head()


def test_several_processes_upgrading_one_database_at_once_all_start(database_url: Callable[[str], str]) -> None:
    """The lock: one process makes the schema, the others wait for it and find nothing to do."""
    url = database_url("racing")
    fengqiao = Path(sys.executable).parent / "fengqiao"
    procs = [
        subprocess.Popen(
            [str(fengqiao), "db", "upgrade", "--database", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out)
    assert sum("数据库结构已升级：空 →" in out for out in outputs) == 1, outputs
    assert sum("已是最新版本" in out for out in outputs) == 3, outputs
    assert differences(url) == []


def test_db_commands_show_the_revision_and_the_history(
    database_url: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = database_url("cli")
    assert main(["db", "current", "--database", url]) == 0
    assert f"无（空库或旧版本建立）（待升级到 {migrations.head()}）" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database", url]) == 0
    assert f"空 → {migrations.head()}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database", url]) == 0
    assert "无需升级" in capsys.readouterr().out
    assert main(["db", "current", "--database", url]) == 0
    assert f"数据库结构版本：{migrations.head()}（最新）" in capsys.readouterr().out
    assert main(["db", "history", "--database", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{migrations.BASELINE}  The baseline")
    assert lines[-1].endswith("← 当前")


def test_db_upgrade_reports_a_refusal(database_url: Callable[[str], str], capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url("cli_refused")
    execute(url, "CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    assert main(["db", "upgrade", "--database", url]) == 1
    assert "数据库结构操作失败：数据库中已有不属于枫桥的表" in capsys.readouterr().err
