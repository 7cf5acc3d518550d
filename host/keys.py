"""``fengqiao keys``: the county's personal-data keys in a node's keyring file, and re-sealing the
node's stored personal data under the current key.

    fengqiao keys rotate --code 371702101                # a new current key, then re-seal
    fengqiao keys rotate --code 371702101 --key-stdin    # the key the county rotated to
    fengqiao keys reseal --code 371702101                # go on with an interrupted re-seal
    fengqiao keys list   --code 371702101                # the keys, and what each still seals

The keyring file is ``FQ_PERSONAL_KEYRING`` (or ``--keyring``); a running node reads it again when
it changes, so it seals with the new key at once and still opens what older keys sealed. The
re-seal runs beside the node (any number of its processes may be writing), a batch per
transaction; stopped, it goes on from the last batch when run again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fengqiao import migrations
from fengqiao.cases import reseal
from fengqiao.db import Database
from fengqiao.errors import FengqiaoError
from fengqiao.security import audit
from fengqiao.security import keyring as keyfile
from fengqiao.security.sealing import Keyring, Keys, new_key, parse_key
from host.users import AccountSettings


class KeySettings(AccountSettings):
    """The node's database and keys (the same variables as the node's own settings)."""

    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    personal_data_key: SecretStr | None = None
    personal_keyring: Path | None = Field(default=None)

    def env_key(self) -> bytes | None:
        return parse_key(self.personal_data_key.get_secret_value()) if self.personal_data_key else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _path(args: argparse.Namespace, settings: KeySettings) -> Path:
    path: Path | None = args.keyring or settings.personal_keyring
    if path is None:
        raise SystemExit("未指定密钥环文件：请设置 FQ_PERSONAL_KEYRING 或使用 --keyring")
    return path


def _url(args: argparse.Namespace, settings: KeySettings) -> str:
    return str(args.database) if args.database else settings.url_for(args.code)


def _audited(db: Database, code: str, action: str, subject: str, detail: dict[str, object]) -> None:
    """The key operation in the node's audit trail, by the operating-system user who ran it."""
    entry = audit.Entry(at=_now(), node=code, actor=getpass.getuser(), action=action, subject=subject, detail=detail)
    db.transaction(lambda s: audit.record(s, [entry]))


def _reseal(code: str, url: str, ring: Keyring, batch: int, *, rotated: list[str] | None = None) -> int:
    db = Database(url)
    try:
        migrations.upgrade(db.url)

        def tell(p: reseal.Progress) -> None:
            state = "完成" if p.finished else "进行中"
            print(
                f"重新加密{p.label}（密钥 {p.key_id}）：已检查 {p.scanned} 条，已改用新密钥 {p.resealed} 条，"
                f"无法解密 {p.unreadable} 条，{state}",
                flush=True,
            )

        if rotated is not None:
            _audited(db, code, "keys.rotate", ring.current_id, {"older": rotated})
        summary = reseal.reseal(db, ring, now=_now, batch=batch, on_batch=tell)
        detail = {"resealed": summary.resealed, "older_left": summary.older, "unreadable": summary.unreadable}
        _audited(db, code, "keys.reseal", summary.key_id, dict(detail))
    except FengqiaoError as exc:
        print(f"重新加密中断（已完成的批次已保存，再次运行即可继续）：{exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(summary.line())
    return 0 if not any(summary.older.values()) else 1


def _rotate(args: argparse.Namespace) -> int:
    settings = KeySettings()
    path = _path(args, settings)
    env = settings.env_key()
    if env is None and not path.exists():
        print(
            f"无法轮换密钥：密钥环文件 {path} 尚不存在，且未设置 FQ_PERSONAL_DATA_KEY；"
            "新密钥环须包含本节点现有的密钥，否则已存的个人信息将无法解密",
            file=sys.stderr,
        )
        return 1
    text = sys.stdin.readline().strip() if args.key_stdin else new_key()
    try:
        raw = parse_key(text)
        keys = keyfile.rotate(path, raw, before=Keys.of(env) if env else None, now=_now())
    except (ValueError, OSError) as exc:
        print(f"无法轮换密钥：{exc}", file=sys.stderr)
        return 1
    older = ", ".join(k for k in keys.by_id if k != keys.current) or "无"
    print(f"当前密钥已改为 {keys.current}（密钥环 {path}；保留的旧密钥：{older}）。县内每个节点须持有同一密钥环。")
    ring = Keyring(keyfile.KeyringFile(path, env))
    if args.no_reseal:
        db = Database(_url(args, settings))
        try:
            migrations.upgrade(db.url)
            _audited(db, args.code, "keys.rotate", keys.current, {"older": sorted(set(keys.by_id) - {keys.current})})
        finally:
            db.close()
        return 0
    return _reseal(args.code, _url(args, settings), ring, args.batch, rotated=sorted(set(keys.by_id) - {keys.current}))


def _resume(args: argparse.Namespace) -> int:
    settings = KeySettings()
    try:
        ring = Keyring(keyfile.KeyringFile(args.keyring or settings.personal_keyring, settings.env_key()))
    except ValueError as exc:
        print(f"无法读取密钥：{exc}", file=sys.stderr)
        return 1
    return _reseal(args.code, _url(args, settings), ring, args.batch)


def _list(args: argparse.Namespace) -> int:
    settings = KeySettings()
    try:
        keys = keyfile.KeyringFile(args.keyring or settings.personal_keyring, settings.env_key())()
    except ValueError as exc:
        print(f"无法读取密钥：{exc}", file=sys.stderr)
        return 1
    db = Database(_url(args, settings))
    try:
        migrations.upgrade(db.url)
        counts = reseal.census(db)
    finally:
        db.close()
    for kid in sorted({*keys.by_id, *(k for c in counts.values() for k in c)}):
        held = "当前密钥" if kid == keys.current else ("旧密钥" if kid in keys.by_id else "本节点未持有")
        stored = "、".join(f"{s.label} {counts[s.name].get(kid, 0)} 条" for s in reseal.STORED)
        print(f"{kid}  {held}  {stored}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fengqiao keys rotate | reseal | list`` to the command line."""
    keys = sub.add_parser("keys", help="the personal-data keys of a node: rotate, re-seal, list")
    commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = commands.add_parser("rotate", help="add a new current key (older ones kept), then re-seal stored data")
    resume = commands.add_parser("reseal", help="re-seal stored data under the current key (resumes where it stopped)")
    listing = commands.add_parser("list", help="the keys, and how many stored values each one seals")
    for command in (rotate, resume, listing):
        command.add_argument("--code", required=True, help="division code of the node whose database is re-sealed")
        command.add_argument("--keyring", type=Path, help="the keyring file (default: FQ_PERSONAL_KEYRING)")
        command.add_argument("--database", help="the node's database URL (default: DATABASE_URL, else its SQLite file)")
    for command in (rotate, resume):
        command.add_argument("--batch", type=int, default=200, help="rows per transaction")
    rotate.add_argument("--key-stdin", dest="key_stdin", action="store_true", help="read the new key from stdin")
    rotate.add_argument("--no-reseal", dest="no_reseal", action="store_true", help="only change the keyring file")
    rotate.set_defaults(run=_rotate)
    resume.set_defaults(run=_resume)
    listing.set_defaults(run=_list)
