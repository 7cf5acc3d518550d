"""Consistent copies of a node's database while it runs, for ``fengqiao backup`` (host/backup.py).

SQLite: the online backup API copies the file in one read transaction (with WAL, the node's
writers go on meanwhile). PostgreSQL: ``pg_dump`` on a snapshot exported here, in which the row
counts and the attachment list are read too, so they describe exactly what was dumped.
``pg_dump`` refuses a server of a newer major version and ``pg_restore`` may not read a newer
``pg_dump``'s archive: both are checked first and refused with the client to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from fengqiao.db import engine_url
from fengqiao.errors import Unavailable


class DatabaseCopyError(Unavailable):
    """A backup cannot be taken or restored; ``message`` says why, in Chinese."""


@dataclasses.dataclass(frozen=True)
class Inventory:
    """What a database snapshot holds: rows per table, recorded attachments, schema revision."""

    counts: dict[str, int]
    attachments: list[str]
    revision: str | None


def major_of(version_text: str) -> int:
    """The major version in ``pg_dump --version``'s answer (``pg_dump (PostgreSQL) 15.20 …``)."""
    found = re.search(r"\)\s*(\d+)(?:\.(\d+))?", version_text) or re.search(r"(\d+)\.(\d+)", version_text)
    if found is None:
        raise DatabaseCopyError(f"无法识别 PostgreSQL 客户端版本：{version_text.strip()}")
    return int(found.group(1))


def client_refusal(tool: str, client_major: int, server_major: int) -> str | None:
    """Why ``tool`` of ``client_major`` cannot work with a server (or dump) of ``server_major``:
    pg_dump refuses a newer server, pg_restore may not read a newer pg_dump's archive."""
    if client_major >= server_major:
        return None
    return (
        f"{tool} 版本 {client_major} 低于{'数据库服务器' if tool == 'pg_dump' else '备份所用 pg_dump 的'}版本 "
        f"{server_major}：请安装 PostgreSQL {server_major} 的客户端（如 postgresql-client-{server_major}），"
        "并用 FQ_PG_BIN_DIR 指向其 bin 目录"
    )


# -- the database -------------------------------------------------------------------------------


def inventory(conn: Connection) -> Inventory:
    """Rows per table, the attachments recorded and the schema revision, as ``conn`` sees them."""
    tables = sorted(set(sqlalchemy.inspect(conn).get_table_names()) - {"alembic_version"})
    counts = {t: int(conn.execute(sqlalchemy.text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}
    hashes = (
        sorted(conn.execute(sqlalchemy.text("SELECT sha256 FROM attachment")).scalars())
        if "attachment" in tables
        else []
    )
    revision = None
    if sqlalchemy.inspect(conn).has_table("alembic_version"):
        revision = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
    return Inventory(counts, hashes, revision)


@contextlib.contextmanager
def connect(url: str) -> Iterator[Connection]:
    engine = sqlalchemy.create_engine(engine_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    except sqlalchemy.exc.OperationalError as exc:
        raise DatabaseCopyError(f"无法连接数据库：{exc.orig}") from exc
    finally:
        engine.dispose()


def sqlite_path(url: str) -> Path:
    database = sqlalchemy.engine.make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseCopyError(f"数据库地址 {url} 不是 SQLite 文件")
    return Path(database)


def libpq_url(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def pg_tool(settings_dir: Path | None, name: str) -> str:
    found = shutil.which(name, path=str(settings_dir)) if settings_dir else shutil.which(name)
    if found is None:
        where = f"在 {settings_dir} 中" if settings_dir else "在 PATH 中"
        raise DatabaseCopyError(f"{where}找不到 {name}：请安装 PostgreSQL 客户端（postgresql-client）")
    return found


def tool_version(tool: str) -> str:
    return subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def run_tool(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DatabaseCopyError(f"{what}失败：{done.stderr.strip() or done.stdout.strip()}")


def copy_sqlite(url: str, out: Path) -> Inventory:
    """Copy the live SQLite database into ``out`` with the online backup API (one read
    transaction: a consistent copy while the node goes on writing)."""
    source_path = sqlite_path(url)
    if not source_path.exists():
        raise DatabaseCopyError(f"数据库文件 {source_path} 不存在")
    source = sqlite3.connect(source_path.resolve().as_uri() + "?mode=ro", uri=True, timeout=60)
    target = sqlite3.connect(out)
    try:
        source.backup(target)  # pages=-1: all of it in one step, so one snapshot
    finally:
        target.close()
        source.close()
    with connect(f"sqlite:///{out}") as conn:
        return inventory(conn)


def dump_postgres(url: str, out: Path, *, pg_bin_dir: Path | None) -> tuple[Inventory, str]:
    """``pg_dump`` of the database into ``out`` (custom format) on a snapshot this function
    exports and reads its inventory in; returns it and pg_dump's version."""
    pg_dump = pg_tool(pg_bin_dir, "pg_dump")
    client = tool_version(pg_dump)
    with connect(url) as conn:
        server_major = int(conn.execute(sqlalchemy.text("SHOW server_version_num")).scalar_one()) // 10000
        conn.rollback()  # the snapshot's transaction below sets its own isolation level
        refusal = client_refusal("pg_dump", major_of(client), server_major)
        if refusal is not None:
            raise DatabaseCopyError(refusal)
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.execute(sqlalchemy.text("SELECT pg_export_snapshot()")).scalar_one()
            held = inventory(conn)
            run_tool(
                [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                 f"--file={out}", f"--dbname={libpq_url(url)}"],
                "pg_dump 导出",
            )  # fmt: skip
    return held, client


def restore_postgres(dump: Path, url: str, *, dumped_by: str, pg_bin_dir: Path | None) -> None:
    """Load a ``pg_dump`` archive into the (empty) database at ``url``, in one transaction."""
    pg_restore = pg_tool(pg_bin_dir, "pg_restore")
    refusal = client_refusal("pg_restore", major_of(tool_version(pg_restore)), major_of(dumped_by))
    if refusal is not None:
        raise DatabaseCopyError(refusal)
    run_tool(
        [pg_restore, "--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges",
         f"--dbname={libpq_url(url)}", str(dump)],
        "pg_restore 导入",
    )  # fmt: skip


def table_names(url: str) -> list[str]:
    """The tables of the database at ``url`` (a SQLite file that does not exist has none)."""
    if url.startswith("sqlite") and not sqlite_path(url).exists():
        return []
    with connect(url) as conn:
        return sorted(sqlalchemy.inspect(conn).get_table_names())
