"""Schema migrations (Alembic): one history for SQLite and PostgreSQL, applied by a node itself.

``upgrade`` runs under a lock, so several processes of one node may start at once: PostgreSQL
takes an advisory lock for the transaction, SQLite opens it with ``BEGIN EXCLUSIVE``; the others
wait, then find nothing left to do. The whole upgrade is one transaction on both. A database made
by ``create_all`` before migrations existed (tables, no ``alembic_version``) is adopted: the
baseline ``0001`` creates only the tables it lacks and is recorded, later migrations follow.

Adding a migration is one file in ``versions/``: change the models, then
``fengqiao db revision -m "…" --database sqlite:///scratch.db`` writes it (see README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from fengqiao.db import engine_url
from fengqiao.errors import Unavailable

log = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parent
BASELINE = "0001"
LOCK_KEY = 7170201  # PostgreSQL advisory lock of a node's schema (create_all took the same one)
SQLITE_WAIT_MS = 300_000  # how long a process waits for another one's upgrade of a SQLite file


class SchemaError(Unavailable):
    """The database's schema cannot be brought to this code's."""


@dataclasses.dataclass(frozen=True)
class Upgraded:
    """What ``upgrade`` did: the revision before and after, and whether it adopted a database
    made by ``create_all`` (the previous release)."""

    before: str | None
    after: str | None
    adopted: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclasses.dataclass(frozen=True)
class Revision:
    """One migration of the history."""

    revision: str
    down_revision: str | None
    message: str


def config(connection: Connection | None = None, *, location: Path = SCRIPTS) -> Config:
    """Alembic's configuration for the migrations in ``location`` (those shipped in this package;
    no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def scripts(location: Path = SCRIPTS) -> ScriptDirectory:
    return ScriptDirectory.from_config(config(location=location))


def head(location: Path = SCRIPTS) -> str:
    """The newest revision this code knows (the history has one head; a test says so)."""
    heads = scripts(location).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"迁移历史有 {len(heads)} 个末端（{', '.join(sorted(heads))}），须合并为一条")
    return heads[0]


def history() -> list[Revision]:
    """Every migration, oldest first."""
    found = [
        Revision(s.revision, s.down_revision if isinstance(s.down_revision, str) else None, s.doc or "")
        for s in scripts().walk_revisions()
    ]
    return list(reversed(found))


def _sqlite_engine(url: str) -> Engine:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver begins nothing itself: "begin" below does
        cursor = dbapi_connection.cursor()
        # The wait first: switching to WAL needs the lock another process's upgrade may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_WAIT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=OFF")  # batch mode copies tables
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN EXCLUSIVE")

    return engine


@contextlib.contextmanager
def _locked(url: str) -> Iterator[Connection]:
    """One transaction on the database that no other upgrade of it runs alongside."""
    url = engine_url(url)
    engine = _sqlite_engine(url) if url.startswith("sqlite") else sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield conn
    except sqlalchemy.exc.DBAPIError as exc:  # the transaction was rolled back: nothing half done
        raise SchemaError(f"无法升级数据库结构：{exc.orig}") from exc
    finally:
        engine.dispose()


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _baseline_tables() -> set[str]:
    module = scripts().get_revision(BASELINE).module
    return set(module.tables().tables)


def upgrade(url: str, *, to: str = "head", location: Path = SCRIPTS) -> Upgraded:
    """Apply the pending migrations to the database at ``url`` (up to ``to``), under the lock."""
    with _locked(url) as conn:
        before = _revision_of(conn)
        known = {s.revision for s in scripts(location).walk_revisions()}
        if before is not None and before not in known:
            newest = head(location)
            raise SchemaError(f"数据库结构版本 {before} 比本程序新（本程序最高为 {newest}），请先升级本程序")
        tables = set(sqlalchemy.inspect(conn).get_table_names()) - {"alembic_version"}
        adopted = before is None and bool(tables)
        if adopted:
            ours = _baseline_tables()
            if not tables & ours:
                strangers = "、".join(sorted(tables)[:5])
                raise SchemaError(f"数据库中已有不属于枫桥的表（{strangers}），请确认数据库地址")
            log.info("adopting a database made before migrations (%d of %d tables)", len(tables & ours), len(ours))
        try:
            command.upgrade(config(conn, location=location), to)
        except CommandError as exc:
            raise SchemaError(f"无法升级数据库结构：{exc}") from exc
        after = _revision_of(conn)
    if after != before:
        log.info("database schema upgraded from %s to %s", before or ("create_all" if adopted else "empty"), after)
    return Upgraded(before=before, after=after, adopted=adopted)


def current(url: str) -> str | None:
    """The database's revision (``None``: no migration recorded — empty, or made by ``create_all``)."""
    engine = sqlalchemy.create_engine(engine_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return _revision_of(conn)
    except sqlalchemy.exc.OperationalError as exc:
        raise SchemaError(f"无法读取数据库结构版本：{exc.orig}") from exc
    finally:
        engine.dispose()


def revision(url: str, message: str, *, location: Path = SCRIPTS) -> Path:
    """Write the next migration into ``versions/``: what the imported models declare beyond the
    database at ``url`` (a scratch database: it is upgraded to the head first)."""
    upgrade(url, location=location)
    number = f"{int(head(location).split('_')[0]) + 1:04d}"  # a revision may be named 0004_topic
    with _locked(url) as conn:
        cfg = config(conn, location=location)
        ruff = Path(sys.executable).parent / "ruff"
        if ruff.exists():  # the new file comes out as `make lint` wants it
            for key, value in (
                ("hooks", "ruff"),
                ("ruff.type", "exec"),
                ("ruff.executable", str(ruff)),
                ("ruff.options", "format REVISION_SCRIPT_FILENAME"),
            ):
                cfg.set_section_option("post_write_hooks", key, value)
        script = command.revision(cfg, message=message, autogenerate=True, rev_id=number)
    if script is None or isinstance(script, list):
        raise SchemaError("未能生成迁移脚本")
    return Path(script.path)
