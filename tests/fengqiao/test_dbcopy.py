"""The rules ``fengqiao backup`` applies to PostgreSQL's client tools (pure), and the inventory of
a database as the backup's manifest records it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fengqiao import dbcopy, migrations
from fengqiao.dbcopy import DatabaseCopyError


@pytest.mark.parametrize(
    ("answer", "major"),
    [
        ("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", 15),
        ("pg_restore (PostgreSQL) 16.4", 16),
        ("pg_dump (PostgreSQL) 9.6.24", 9),
        ("pg_dump (PostgreSQL) 17beta1", 17),
    ],
)
def test_the_major_version_is_read_from_the_tools_answer(answer: str, major: int) -> None:
    assert dbcopy.major_of(answer) == major


def test_an_unreadable_version_is_refused_in_chinese() -> None:
    with pytest.raises(DatabaseCopyError, match="无法识别 PostgreSQL 客户端版本"):
        dbcopy.major_of("pg_dump: command not understood")


def test_pg_dump_older_than_the_server_is_refused_with_the_client_to_install() -> None:
    refusal = dbcopy.client_refusal("pg_dump", 15, 16)
    assert refusal is not None
    assert "pg_dump 版本 15 低于数据库服务器版本 16" in refusal and "postgresql-client-16" in refusal
    assert "FQ_PG_BIN_DIR" in refusal


def test_pg_restore_older_than_the_dump_is_refused() -> None:
    refusal = dbcopy.client_refusal("pg_restore", 15, 17)
    assert refusal is not None and "备份所用 pg_dump 的版本 17" in refusal


@pytest.mark.parametrize(("client", "server"), [(15, 15), (16, 15), (17, 13)])
def test_a_client_as_new_as_the_server_or_newer_may_run(client: int, server: int) -> None:
    assert dbcopy.client_refusal("pg_dump", client, server) is None


def test_the_inventory_counts_every_table_and_names_the_schema_revision(database_url: Callable[[str], str]) -> None:
    url = database_url("inventory")
    assert dbcopy.table_names(url) == []
    migrations.upgrade(url)
    with dbcopy.connect(url) as conn:
        held = dbcopy.inventory(conn)
    assert held.revision == migrations.head()
    assert set(held.counts) == set(dbcopy.table_names(url)) - {"alembic_version"}
    assert "case_record" in held.counts and all(n == 0 for n in held.counts.values())
    assert held.attachments == []
