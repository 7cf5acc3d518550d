"""Schema migrations on SQLite and PostgreSQL: the migrated schema is what the models declare, a
database made by ``create_all`` (the previous release) is adopted, several processes may upgrade
one database at once, and ``fengqiao db`` tells an operator where a database stands."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from bench.recompute import expected, observed
from fengqiao import migrations
from fengqiao.cases import reseal
from fengqiao.clock import CHINA_TZ
from fengqiao.db import Database, engine_url
from fengqiao.security import audit, sealing
from fengqiao.v1 import case_pb2, federation_pb2
from harness.county import PERSONAL_DATA_KEY, small_county
from host.cli import main
from host.node import figure_sources, import_tables
from services.federation import figures as fig
from services.federation import rules, snapshot, views
from services.federation import store as fedstore


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
    assert set(metadata.tables) | {"alembic_version"} <= tables(url)  # every baseline table, and
    assert differences(url) == []  # exactly what the models declare after the later migrations


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


def test_a_database_that_cannot_be_opened_is_named_in_the_refusal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'node.db'}"
    with pytest.raises(migrations.SchemaError, match="无法升级数据库结构：unable to open database file"):
        migrations.upgrade(url)
    with pytest.raises(migrations.SchemaError, match="无法读取数据库结构版本"):
        migrations.current(url)


def test_the_history_is_one_line_from_the_baseline() -> None:
    history = migrations.history()
    assert history[0].revision == migrations.BASELINE and history[0].down_revision is None
    for older, newer in itertools.pairwise(history):
        assert newer.down_revision == older.revision
    assert history[-1].revision == migrations.head()


LATER = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"


def upgrade() -> None:
    with op.batch_alter_table("counter") as batch:
        batch.add_column(sa.Column("{column}", sa.String(40), nullable=False, server_default="{default}"))
        batch.alter_column("value", existing_type=sa.Integer(), nullable=True)
    {then}
"""


def later_migrations(tmp_path: Path, *steps: tuple[str, str]) -> Path:
    """This package's migrations plus ``steps`` (column, what runs after adding it) as 0002, 0003…"""
    location = tmp_path / "migrations"
    shutil.copytree(migrations.SCRIPTS, location, ignore=shutil.ignore_patterns("__pycache__"))
    down = migrations.head()
    for column, then in steps:
        rev = f"{int(down[:4]) + 1:04d}"  # heads may be named "0004_<topic>"
        text = LATER.format(rev=rev, down=down, column=column, default=f"{column}-default", then=then)
        (location / "versions" / f"{rev}_{column}.py").write_text(text)
        down = rev
    return location


def columns(url: str, table: str) -> list[str]:
    eng = engine(url)
    try:
        return [c["name"] for c in sqlalchemy.inspect(eng).get_columns(table)]
    finally:
        eng.dispose()


def test_a_later_migration_alters_a_table_in_place_keeping_its_rows(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    """What the next engineer's migration does: batch mode on SQLite (a copy of the table), ALTER on PostgreSQL."""
    url = database_url("later")
    migrations.upgrade(url)
    execute(url, "INSERT INTO counter (name, value) VALUES ('receipt:371702', 41)")
    location = later_migrations(tmp_path, ("note", "pass"))

    done = migrations.upgrade(url, location=location)

    assert (done.before, done.after) == (migrations.head(), migrations.head(location))
    eng = engine(url)
    with eng.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT name, value, note FROM counter")).all()
    eng.dispose()
    assert rows == [("receipt:371702", 41, "note-default")]
    assert not migrations.upgrade(url, location=location).changed


def test_a_migration_that_fails_leaves_the_database_as_it_was(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    """The whole upgrade is one transaction: 0002 and the failing 0003 are both undone."""
    url = database_url("failing")
    migrations.upgrade(url)
    execute(url, "INSERT INTO counter (name, value) VALUES ('receipt:371702', 41)")
    location = later_migrations(
        tmp_path, ("note", "pass"), ("remark", 'op.execute("UPDATE counter SET no_such_column = 1")')
    )

    with pytest.raises(migrations.SchemaError, match="无法升级数据库结构"):
        migrations.upgrade(url, location=location)

    assert migrations.current(url) == migrations.head()
    assert columns(url, "counter") == ["name", "value"]
    assert differences(url) == []


def test_revision_writes_the_next_migration_from_what_the_models_declare(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    """The database lacks a table the models declare: the new file creates it, in plain SQLAlchemy types."""
    import_tables()
    url = database_url("revision")
    migrations.upgrade(url)
    execute(url, "DROP TABLE risk_alert")
    location = later_migrations(tmp_path)

    path = migrations.revision(url, "risk alerts again", location=location)

    head = migrations.head()
    following = f"{int(head[:4]) + 1:04d}"
    assert path.parent == location / "versions" and path.name == f"{following}_risk_alerts_again.py"
    text = path.read_text()
    assert f'revision = "{following}"' in text and f'down_revision: str | None = "{head}"' in text
    assert 'op.create_table(\n        "risk_alert",' in text  # formatted as `make lint` wants it
    assert 'sa.Column("from_node", sa.String(12), nullable=False)' in text and "sqlmodel" not in text
    assert "sa.DateTime(timezone=True)" in text
    assert migrations.upgrade(url, location=location).after == following
    assert differences(url) == []


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


# The previous release's database (tests/fixtures/make_previous_release_db.py says how it was made).
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ABOUT = json.loads((FIXTURES / "previous_release.json").read_text())
TOWN = ABOUT["node"]
TOPOLOGY = small_county(towns=2, villages=1, neighbours={"371702101": ["371702102"], "371702102": ["371702101"]})


def plain(value: object) -> object:
    """A value as both databases give it back: datetimes in naive UTC (SQLite keeps no zone)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def every_row(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the previous release, typed by its frozen schema, in key order."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return {
                name: sorted(
                    (tuple(plain(v) for v in row) for row in conn.execute(sqlalchemy.select(table))),
                    key=repr,
                )
                for name, table in baseline_tables().tables.items()
            }
    finally:
        eng.dispose()


def copy_rows(source: str, target: str) -> None:
    """Load the previous release's rows into ``target`` (already holding its tables), table by table."""
    rows = every_row(source)
    eng = engine(target)
    try:
        with eng.begin() as conn:
            for name, table in baseline_tables().tables.items():
                columns = [c.name for c in table.columns]
                values = [
                    {
                        c: v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v
                        for c, v in zip(columns, row, strict=True)
                    }
                    for row in rows[name]
                ]
                if values:
                    conn.execute(sqlalchemy.insert(table), values)
            conn.execute(sqlalchemy.text("SELECT setval('audit_log_id_seq', (SELECT max(id) FROM audit_log))"))
    finally:
        eng.dispose()


def folded_tallies(url: str, *, now: dt.datetime, period: rules.Period) -> dict[str, fig.Tally]:
    """Every node's tallies as the release before the figure facts made them: each case of the
    period read from its projection, its facts derived and summed (the pure fold)."""
    db = Database(url)
    try:
        cases = db.transaction(lambda s: fedstore.cases_received(s, within=TOWN, start=period.start, end=period.end))
    finally:
        db.close()
    by_origin = fig.tally_by_origin(fig.facts_of(c, now=now) for c in cases)
    return fig.rollup(by_origin, [n.code for n in TOPOLOGY.subtree(TOWN)])


def figures(url: str, *, tallied_from: str = "") -> tuple[federation_pb2.NodeStats, dt.datetime, rules.Period]:
    """The town's figures as the federation service computes them (with its figure sources);
    with ``tallied_from``, the cases' tallies folded from that database's projections instead."""
    db = Database(url)
    try:
        first, last = db.transaction(
            lambda s: s.execute(
                sqlalchemy.text(
                    "SELECT (SELECT min(received_at) FROM case_record), (SELECT max(stored_at) FROM case_event)"
                )
            ).one()
        )
        first, last = (v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v) for v in (first, last))
        now = plain(last).replace(tzinfo=dt.UTC) + dt.timedelta(hours=1)  # type: ignore[union-attr]
        period = rules.parse_period(f"{plain(first).replace(tzinfo=dt.UTC).astimezone(CHINA_TZ):%Y-%m}")  # type: ignore[union-attr]
        sources = figure_sources()
        snap = db.transaction(
            lambda s: snapshot.take(
                s,
                topology=TOPOLOGY,
                code=TOWN,
                period=period,
                now=now,
                stale_after=dt.timedelta(days=7),
                sources=sources,
            )
        )
        if tallied_from:
            snap = dataclasses.replace(snap, tallies=folded_tallies(tallied_from, now=now, period=period))
        return views.node_stats(snap, TOWN, include_children=True), now, period
    finally:
        db.close()


def raw_logs(url: str) -> list[list[case_pb2.CaseEvent]]:
    """Every case's events straight from the rows, parsed apart from any store code."""
    logs: dict[str, list[case_pb2.CaseEvent]] = {}
    for _id, case_id, _seq, *_rest, data in every_row(url)["case_event"]:
        logs.setdefault(str(case_id), []).append(case_pb2.CaseEvent.FromString(data))  # type: ignore[arg-type]
    return [sorted(log, key=lambda e: e.seq) for log in logs.values()]


def audit_chain(url: str) -> tuple[int, object]:
    db = Database(url)
    try:
        return db.transaction(audit.verify)
    finally:
        db.close()


def test_the_previous_release_database_holds_a_bit_of_everything() -> None:
    rows = every_row(f"sqlite:///{FIXTURES / 'previous_release.db'}")
    assert ABOUT["commit"].startswith("52a02b4")
    assert ABOUT["case_statuses"] == list(range(1, 14))  # 受理 … 发回重办: every state
    for table in ("case_record", "case_event", "directive", "joint_case", "joint_event", "risk_alert"):
        assert rows[table], table
    for table in ("assessment_project", "assessment_filed", "audit_log", "app_user", "api_key", "inbox", "counter"):
        assert rows[table], table
    assert {name: len(found) for name, found in rows.items()} == ABOUT["rows"]


def test_the_previous_release_database_upgrades_in_place_with_nothing_lost_or_changed(
    database_url: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite: a copy of the file is upgraded in place. PostgreSQL: its rows loaded into a database
    made as the previous release made one (create_all of that schema, no migration record)."""
    pristine = tmp_path / "pristine.db"
    shutil.copy(FIXTURES / "previous_release.db", pristine)
    before_url = f"sqlite:///{pristine}"
    url = database_url("previous")
    if url.startswith("sqlite"):
        shutil.copy(FIXTURES / "previous_release.db", url.removeprefix("sqlite:///"))
    else:
        eng = engine(url)
        baseline_tables().create_all(eng)
        eng.dispose()
        copy_rows(before_url, url)
    rows_before = every_row(before_url)

    assert main(["db", "upgrade", "--database", url]) == 0
    stats_before, now, period = figures(url, tallied_from=before_url)  # the cases' tallies as the release folded them
    said = capsys.readouterr().out
    assert "已接管旧版本" in said and f"旧版本 → {migrations.head()}" in said

    assert every_row(url) == rows_before  # every case, event, directive, joint case, project, audit row, user
    assert differences(url) == []
    stats_after, _, _ = figures(url)
    assert stats_after == stats_before
    assert observed(stats_after) == expected(raw_logs(before_url), TOWN, period, now=now)
    assert stats_after.received == ABOUT["rows"]["case_record"] and stats_after.closed > 0
    assert audit_chain(url) == (ABOUT["audit_rows_verified"], None)

    assert main(["db", "upgrade", "--database", url]) == 0
    assert "无需升级" in capsys.readouterr().out
    assert every_row(url) == rows_before

    db = Database(url)  # the upgraded node goes on: its audit chain grows from where it was
    try:
        entry = audit.Entry(at=now, node=TOWN, actor="管理员", action="login", subject="admin")
        db.transaction(lambda s: audit.record(s, [entry]))
    finally:
        db.close()
    assert audit_chain(url) == (ABOUT["audit_rows_verified"] + 1, None)
    the_previous_release_cases_read_after_a_key_rotation(url)


def the_previous_release_cases_read_after_a_key_rotation(url: str) -> None:
    """Its sealed values (the previous release's single key) open under a keyring that has moved
    on to a new key, and re-sealing puts every one of them under the new key."""
    old = sealing.parse_key(PERSONAL_DATA_KEY)
    ring = sealing.Keyring.of(old, sealing.parse_key(sealing.new_key()))
    cases = [case_pb2.Case.FromString(bytes(row[-1])) for row in every_row(url)["case_record"]]
    received = [e.received.case for log in raw_logs(url) for e in log if e.HasField("received")]
    assert len(cases) == len(received) == ABOUT["rows"]["case_record"]
    for case in (*cases, *received):
        assert sealing.sealed_key_id(case.sealed_personal) == sealing.key_id(old)
        shown = ring.opened(case)
        assert shown.parties and shown.parties[0].name and not shown.personal_note, case.id
    db = Database(url)
    try:
        summary = reseal.reseal(db, ring, now=lambda: dt.datetime.now(dt.UTC), batch=7, settle_s=0)
        counted = reseal.census(db, chunk=4)  # a chunk at a time: the same as all at once
    finally:
        db.close()
    assert summary.resealed == {"case_record": len(cases), "case_event": len(received), "outbox": 0}
    assert {name: dict(c) for name, c in counted.items()} == {
        "case_record": {ring.current_id: len(cases)},
        "case_event": {ring.current_id: len(received)},
        "outbox": {},
    }
    again = [case_pb2.Case.FromString(bytes(row[-1])) for row in every_row(url)["case_record"]]
    again += [e.received.case for log in raw_logs(url) for e in log if e.HasField("received")]
    assert {sealing.sealed_key_id(c.sealed_personal) for c in again} == {ring.current_id}
    assert [ring.opened(c).parties for c in again] == [ring.opened(c).parties for c in (*cases, *received)]
