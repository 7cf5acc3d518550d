"""``fengqiao user``: operator accounts and Open311 API keys, written into a node's database.

    fengqiao user add --code 371702101 --username zhangsan --role duty_officer
    fengqiao user add --code 371702101 --username lisi --role mediator --department 司法所
    fengqiao user add --code 371702 --scope 371702101 --username wangwu --role duty_officer
    fengqiao user disable --code 371702 --username wangwu
    fengqiao user key --code 371702 --label 12345平台

An account is managed by the node whose database it is written into (``--code``); one whose
center (``--scope``) is a node below is sent down to that node by the running node's outbox relay
and kept there, so its operator logs in at their own center even while the WAN is down. Changes
and disabling are made at the managing node. The password is asked for at the terminal (or read
from standard input with ``--password-stdin``); a new API key is printed once and only its
SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import secrets
import sys
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fengqiao import migrations
from fengqiao.db import Database
from fengqiao.errors import FengqiaoError
from fengqiao.security import accounts, auth
from fengqiao.security.roles import LABELS, Role


class AccountSettings(BaseSettings):
    """Where the node's database is (the same variables as the node's own settings)."""

    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    database_url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL", "FQ_DATABASE_URL"))
    data_dir: Path = Path(".fengqiao/data")

    def url_for(self, code: str) -> str:
        """The node's database URL: ``DATABASE_URL``, else its SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / f'{code}.db').resolve()}"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("密码：")
    if getpass.getpass("再次输入密码：") != first:
        raise SystemExit("两次输入的密码不一致")
    return first


def _add(args: argparse.Namespace) -> int:
    password = _password(args.password_stdin)
    scope = args.scope or args.code
    if not scope.startswith(args.code) and args.role != Role.PROVINCE_READONLY:
        print(f"账号所属中心 {scope} 须为节点 {args.code} 或其下级（省级只读账号除外）", file=sys.stderr)
        return 2
    db = Database(AccountSettings().url_for(args.code))
    try:
        auth.check_new_password(password)
        migrations.upgrade(db.url)
        now = dt.datetime.now(dt.UTC)
        db.transaction(
            lambda s: accounts.save(
                s, here=args.code, actor=CLI_ACTOR, username=args.username, password=password, role=args.role,
                node_code=scope, display_name=args.display_name, department=args.department, now=now,
            )
        )  # fmt: skip
    except FengqiaoError as exc:
        print(f"无法保存账号：{exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    where = f"{args.department}，" if args.department else ""
    print(f"已保存账号 {args.username}（{LABELS[Role(args.role)]}，{where}{scope} 及其下级），节点 {args.code}")
    if accounts.below(args.code, scope):
        print(f"账号将由节点 {args.code} 下发到 {scope}（节点运行且链路连通时数秒内到达）")
    return 0


CLI_ACTOR = "cli"
"""The actor of account changes made at the command line, in the audit trail."""


def _disable(args: argparse.Namespace) -> int:
    disabled = args.user_command == "disable"
    db = Database(AccountSettings().url_for(args.code))
    try:
        migrations.upgrade(db.url)
        now = dt.datetime.now(dt.UTC)
        changed = db.transaction(
            lambda s: accounts.set_disabled(
                s, here=args.code, actor=CLI_ACTOR, username=args.username, disabled=disabled, now=now
            )
        )
    except FengqiaoError as exc:
        print(f"无法{'停用' if disabled else '启用'}账号：{exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    what = "停用" if disabled else "启用"
    print(f"已{what}账号 {args.username}" if changed else f"账号 {args.username} 已是{what}状态，未改动")
    return 0


def _key(args: argparse.Namespace) -> int:
    key = secrets.token_hex(20)
    db = Database(AccountSettings().url_for(args.code))
    try:
        migrations.upgrade(db.url)
        now = dt.datetime.now(dt.UTC)
        db.transaction(lambda s: auth.ensure_api_key(s, key=key, label=args.label, node_code=args.code, now=now))
    finally:
        db.close()
    print(f"Open311 api_key（只显示这一次，请妥善保存）：{key}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fengqiao user add | disable | enable | key`` to the command line."""
    user = sub.add_parser("user", help="operator accounts and Open311 API keys of a node")
    commands = user.add_subparsers(dest="user_command", required=True)
    add = commands.add_parser("add", help="create an operator account (or reset its password and role)")
    add.add_argument("--code", required=True, help="division code of the node whose database holds the account")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in Role], help="、".join(LABELS.values()))
    add.add_argument("--scope", help="the account's center (default: the node); it sees that center and below")
    add.add_argument("--display-name", dest="display_name", default="")
    add.add_argument("--department", default="", help="the department of a mediator account (required for mediators)")
    add.add_argument("--password-stdin", dest="password_stdin", action="store_true")
    add.set_defaults(run=_add)
    for name, text in (
        ("disable", "disable an operator account (login and earlier tokens refused)"),
        ("enable", "enable a disabled operator account"),
    ):
        toggle = commands.add_parser(name, help=text)
        toggle.add_argument("--code", required=True, help="division code of the node that manages the account")
        toggle.add_argument("--username", required=True)
        toggle.set_defaults(run=_disable)
    key = commands.add_parser("key", help="issue an Open311 api_key accepted at the node and below")
    key.add_argument("--code", required=True, help="division code of the node")
    key.add_argument("--label", required=True, help="who the key is for, e.g. 12345平台")
    key.set_defaults(run=_key)
