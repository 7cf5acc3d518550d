"""Accounts where they are used, at the database (SQLite and PostgreSQL): a change made at the
managing node is versioned, audited and queued down to the account's node with the password hash
only; the receiving node keeps the latest version whatever the order of arrival, and refuses an
account another node manages; a disabled account cannot log in and its earlier tokens are refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from fengqiao import migrations
from fengqiao.db import Database
from fengqiao.divisions import down_subject
from fengqiao.errors import PermissionDenied, Unauthenticated
from fengqiao.models import OutboxRecord
from fengqiao.security import accounts, audit, auth
from fengqiao.security.records import AccountState
from fengqiao.v1 import account_pb2
from host import cli

COUNTY, TOWN, OTHER_TOWN = "371702", "371702101", "371702102"
T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
PASSWORD = "Town-duty-pw-01"


@pytest.fixture
def databases(database_url: Callable[[str], str]) -> Iterator[tuple[Database, Database]]:
    """The county's and the town's databases, migrated."""
    dbs = (Database(database_url("county")), Database(database_url("town")))
    try:
        for db in dbs:
            migrations.upgrade(db.url)
        yield dbs
    finally:
        for db in dbs:
            db.close()


def _sent(session: Session) -> list[tuple[str, account_pb2.AccountEvent]]:
    rows = session.exec(select(OutboxRecord).order_by(OutboxRecord.id)).all()  # type: ignore[arg-type]
    return [(row.subject, account_pb2.AccountEvent.FromString(row.data)) for row in rows]


def _save(session: Session, **fields: str) -> accounts.Change | None:
    values = {"username": "zhaoliu", "password": PASSWORD, "role": "duty_officer", "node_code": TOWN} | fields
    return accounts.save(session, here=COUNTY, actor="admin", now=T0, **values)  # type: ignore[arg-type]


def test_each_change_at_the_county_is_versioned_audited_and_queued_down_with_the_hash_only(
    databases: tuple[Database, Database],
) -> None:
    county, _ = databases
    assert county.transaction(_save) == "created"
    assert county.transaction(_save) is None  # the same again changes nothing and sends nothing
    assert county.transaction(lambda s: _save(s, role="grid_worker")) == "changed"
    assert county.transaction(lambda s: _save(s, role="grid_worker", password="Town-duty-pw-02")) == "password_reset"
    assert county.transaction(
        lambda s: accounts.set_disabled(s, here=COUNTY, actor="admin", username="zhaoliu", disabled=True, now=T0)
    )
    sent = county.transaction(_sent)
    assert [subject for subject, _ in sent] == [
        down_subject(COUNTY, TOWN, "account", change) for change in ("created", "changed", "password_reset", "disabled")
    ]
    snapshots = [getattr(event, event.WhichOneof("payload") or "") for _, event in sent]
    assert [a.version for a in snapshots] == [1, 2, 3, 4]
    assert [a.role for a in snapshots] == ["duty_officer", "grid_worker", "grid_worker", "grid_worker"]
    assert [a.disabled for a in snapshots] == [False, False, False, True]
    assert all(event.node == COUNTY and event.actor == "admin" for _, event in sent)
    for _, event in sent:  # the hash travels, never the password
        data = event.SerializeToString()
        assert PASSWORD.encode() not in data and b"Town-duty-pw-02" not in data
    assert all(a.password_hash.startswith("$argon2id$") for a in snapshots)
    trail = county.transaction(lambda s: [r.action for r in s.exec(select(audit.AuditRecord)).all()])
    assert trail == ["account.created", "account.changed", "account.password_reset", "account.disabled"]
    assert county.transaction(audit.verify)[1] is None


def test_an_account_of_the_node_itself_is_kept_there_and_not_sent(databases: tuple[Database, Database]) -> None:
    county, _ = databases
    assert county.transaction(lambda s: _save(s, node_code=COUNTY)) == "created"
    assert county.transaction(_sent) == []


def test_the_town_keeps_the_latest_version_whatever_the_order_of_arrival(databases: tuple[Database, Database]) -> None:
    county, town = databases
    county.transaction(_save)
    county.transaction(lambda s: _save(s, role="grid_worker"))
    county.transaction(
        lambda s: accounts.set_disabled(s, here=COUNTY, actor="admin", username="zhaoliu", disabled=True, now=T0)
    )
    created, changed, disabled = (event for _, event in county.transaction(_sent))

    def receive(event: account_pb2.AccountEvent) -> bool:
        return town.transaction(lambda s: accounts.received(s, event=event, now=T0))

    assert receive(created)
    assert receive(disabled)  # the last change overtook the second
    assert not receive(changed)  # arriving late, it overwrites nothing
    assert not receive(disabled)  # a duplicate
    account = town.transaction(lambda s: auth.load_account(s, "zhaoliu"))
    assert account is not None and account.role == "grid_worker" and account.disabled
    state = town.transaction(lambda s: s.get(AccountState, "zhaoliu"))
    assert state is not None and (state.managed_by, state.version) == (COUNTY, 3)
    with pytest.raises(Unauthenticated, match="账号 zhaoliu 已停用，请联系管理员"):
        auth.check_login(account, PASSWORD)
    with pytest.raises(Unauthenticated, match="已停用"):  # a token issued before it was disabled
        auth.check_current(account, account.principal, here=TOWN)
    with pytest.raises(Unauthenticated, match="请重新登录"):  # a token of its earlier role
        auth.check_current(
            dataclasses.replace(account, disabled=False), auth.Principal("zhaoliu", "duty_officer", TOWN), here=TOWN
        )
    # the town's own administrator may not change what the county manages
    with pytest.raises(PermissionDenied, match="由上级中心 371702 管理"):
        town.transaction(
            lambda s: accounts.set_disabled(s, here=TOWN, actor="admin", username="zhaoliu", disabled=False, now=T0)
        )


def test_a_login_works_at_the_town_once_the_account_arrived(databases: tuple[Database, Database]) -> None:
    county, town = databases
    county.transaction(_save)
    ((_, created),) = county.transaction(_sent)
    town.transaction(lambda s: accounts.received(s, event=created, now=T0))
    who = town.transaction(lambda s: auth.authenticate(s, username="zhaoliu", password=PASSWORD))
    assert who == auth.Principal("zhaoliu", "duty_officer", TOWN)


def test_an_account_the_town_made_itself_is_not_overwritten_from_above(databases: tuple[Database, Database]) -> None:
    county, town = databases
    town.transaction(lambda s: accounts.save(s, here=TOWN, actor="admin", username="zhaoliu", password="Own-town-pw-01",
                                             role="grid_worker", node_code=TOWN, now=T0))  # fmt: skip
    county.transaction(_save)
    ((_, created),) = county.transaction(_sent)
    with pytest.raises(PermissionDenied, match="账号 zhaoliu 由本中心管理，371702 下发的新建未采用"):
        town.transaction(lambda s: accounts.received(s, event=created, now=T0))
    account = town.transaction(lambda s: auth.load_account(s, "zhaoliu"))
    assert account is not None and account.role == "grid_worker"


def test_moving_an_account_to_another_town_disables_it_at_the_first(databases: tuple[Database, Database]) -> None:
    county, _ = databases
    county.transaction(_save)
    county.transaction(lambda s: _save(s, node_code=OTHER_TOWN))
    subjects = [(subject, event.WhichOneof("payload")) for subject, event in county.transaction(_sent)]
    assert subjects == [
        (down_subject(COUNTY, TOWN, "account", "created"), "created"),
        (down_subject(COUNTY, OTHER_TOWN, "account", "changed"), "changed"),
        (down_subject(COUNTY, TOWN, "account", "disabled"), "disabled"),
    ]
    last = county.transaction(_sent)[-1][1].disabled
    assert last.node_code == TOWN and last.disabled and last.version == 2


def test_the_cli_creates_a_town_operator_at_the_county_and_disables_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FQ_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("FQ_DATABASE_URL", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    add = ["user", "add", "--code", COUNTY, "--scope", TOWN, "--username", "zhaoliu", "--role", "duty_officer"]
    assert cli.main([*add, "--password-stdin"]) == 0
    assert f"账号将由节点 {COUNTY} 下发到 {TOWN}" in capsys.readouterr().out
    assert cli.main(["user", "disable", "--code", COUNTY, "--username", "zhaoliu"]) == 0
    assert "已停用账号 zhaoliu" in capsys.readouterr().out
    assert cli.main(["user", "disable", "--code", COUNTY, "--username", "zhaoliu"]) == 0
    assert "账号 zhaoliu 已是停用状态，未改动" in capsys.readouterr().out
    assert cli.main(["user", "enable", "--code", COUNTY, "--username", "nobody"]) == 1
    assert "无法启用账号：账号 nobody 不存在" in capsys.readouterr().err
    db = Database(f"sqlite:///{tmp_path / f'{COUNTY}.db'}")
    try:
        sent = db.transaction(_sent)
        actions = db.transaction(lambda s: [(r.actor, r.action) for r in s.exec(select(audit.AuditRecord)).all()])
    finally:
        db.close()
    assert [(subject, event.actor) for subject, event in sent] == [
        (down_subject(COUNTY, TOWN, "account", "created"), "cli"),
        (down_subject(COUNTY, TOWN, "account", "disabled"), "cli"),
    ]
    assert actions == [("cli", "account.created"), ("cli", "account.disabled")]


def test_a_token_is_checked_against_the_account_only_where_both_name_the_same_account() -> None:
    sent_down = auth.Account("zhaoliu", "duty_officer", TOWN, "", "", "hash", disabled=True, managed_by=COUNTY)
    managed = dataclasses.replace(sent_down, managed_by="")  # the county's own copy
    own_admin = auth.Account("admin", "county_admin", TOWN, "", "", "hash", disabled=True)

    def token(issuer: str, username: str = "zhaoliu", node: str = TOWN) -> auth.Principal:
        return auth.Principal(username, "county_admin" if username == "admin" else "duty_officer", node, issuer=issuer)

    for account, who, here in (
        (sent_down, token(TOWN), TOWN),  # issued at the town, where it was sent
        (sent_down, token(COUNTY), TOWN),  # issued at the county that manages it
        (managed, token(TOWN), COUNTY),  # issued at the town the county sent it to
        (managed, token(""), COUNTY),  # a token from before tokens named their issuer
    ):
        with pytest.raises(Unauthenticated, match="已停用"):
            auth.check_current(account, who, here=here)
    # Another node's account of the same name (every node has its own admin): the scope checks decide.
    auth.check_current(own_admin, token(OTHER_TOWN, "admin", OTHER_TOWN), here=TOWN)
    auth.check_current(sent_down, token(OTHER_TOWN), here=TOWN)
