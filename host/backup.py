"""``fengqiao backup`` and ``fengqiao restore``: a node's state, without its keys, in one tar file.

    fengqiao backup --code 371702101001 --out /backup/371702101001-20261202.tar
    fengqiao restore /backup/371702101001-20261202.tar --code 371702101001

The backup is taken while the node runs and is consistent: SQLite's online backup API copies
the database in one read transaction (WAL: writers go on meanwhile); on PostgreSQL ``pg_dump``
runs on a snapshot exported by this command, which reads the counts and the attachment list in
that same snapshot. The attachments (content-addressed files, ``services/intake/attachments.py``)
are the ones that snapshot records. The archive holds ``manifest.json`` (node, tier, schema
revision, time, row counts per table, sha256 and size of every other member), the database and
``attachments/``. What it does not hold (keys, configuration, the nats-server's store) is listed
in the manifest and in the README ("备份与恢复").

``restore`` checks every member against the manifest, refuses a backup of another node unless
told (``--allow-other-node``), refuses a database or attachment folder that is not empty, and
checks the restored row counts against the manifest.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fengqiao import dbcopy
from fengqiao.dbcopy import DatabaseCopyError as BackupError
from fengqiao.divisions import tier_of
from fengqiao.errors import FengqiaoError
from services.intake.attachments import AttachmentStore, folder

FORMAT = "fengqiao-backup/1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite"
PG_MEMBER = "database.pgdump"
ATTACHMENTS = "attachments"
ATTACHMENT_MEMBER = re.compile(r"^attachments/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})$")
NOT_INCLUDED = (
    "密钥：FQ_TOKEN_SECRET、FQ_PERSONAL_DATA_KEY（没有它，当事人个人信息无法解封）、"
    "省级报送签名密钥 <节点>-feed-ed25519.pem、TLS 证书与私钥（FQ_TLS_DIR）、NATS 凭据——须另行保管",
    "配置：拓扑文件、环境变量、deploy/policy 下的规则文件",
    "本机 nats-server 的 JetStream 存储：已发出的事件在上级；恢复后由新的 nats-server 重建流",
)


class BackupSettings(BaseSettings):
    """Which node, and where its database and data directory are (the node's own variables)."""

    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    node_code: str = ""
    database_url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL", "FQ_DATABASE_URL"))
    data_dir: Path = Path(".fengqiao/data")
    pg_bin_dir: Path | None = Field(
        default=None, description="where pg_dump and pg_restore of the server's version are"
    )


@dataclasses.dataclass(frozen=True)
class Target:
    """A node's state on this box: its code, database and attachment folder."""

    code: str
    url: str
    data_dir: Path

    @property
    def attachments(self) -> Path:
        return folder(self.data_dir, self.code)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


# -- the archive --------------------------------------------------------------------------------


def node_refusal(backup_code: str, here: str, *, allowed: bool) -> str | None:
    """A backup of another node is restored only when the operator says so."""
    if backup_code == here or allowed:
        return None
    return f"备份属于节点 {backup_code}，不是本节点 {here}；确需恢复到本节点，请加 --allow-other-node"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _attachment_member(sha256: str) -> str:
    return f"{ATTACHMENTS}/{sha256[:2]}/{sha256[2:4]}/{sha256}"  # as ATTACHMENT_MEMBER reads it


def backup(target: Target, out: Path, *, pg_bin_dir: Path | None = None, now: dt.datetime | None = None) -> dict:
    """Write the node's backup to ``out`` (a new file) and return its manifest."""
    if out.exists():
        raise BackupError(f"{out} 已存在，不覆盖：请换一个文件名")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".fq-backup-") as scratch:
        extra: dict[str, str] = {}
        if target.is_sqlite:
            member, db_file = SQLITE_MEMBER, Path(scratch) / SQLITE_MEMBER
            inventory = dbcopy.copy_sqlite(target.url, db_file)
        else:
            member, db_file = PG_MEMBER, Path(scratch) / PG_MEMBER
            inventory, extra["pg_dump_version"] = dbcopy.dump_postgres(target.url, db_file, pg_bin_dir=pg_bin_dir)
        files: dict[str, Path] = {member: db_file}
        for sha256 in inventory.attachments:
            path = AttachmentStore(target.attachments).path(sha256)
            if not path.exists():
                raise BackupError(f"附件 {sha256} 在数据库中有记录，但文件 {path} 不存在")
            files[_attachment_member(sha256)] = path
        hashes = {name: _sha256(path) for name, path in files.items()}
        damaged = [name for name in hashes if ATTACHMENT_MEMBER.match(name) and not name.endswith(hashes[name])]
        if damaged:
            raise BackupError(f"附件文件内容与其 sha256 不符（已损坏）：{', '.join(damaged[:3])}")
        manifest = {
            "format": FORMAT,
            "node": target.code,
            "tier": tier_of(target.code).name.lower(),
            "database": "sqlite" if target.is_sqlite else "postgresql",
            "schema_revision": inventory.revision,
            "taken_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
            "fengqiao_version": version("fengqiao"),
            **extra,
            "counts": inventory.counts,
            "members": {name: {"sha256": hashes[name], "size": path.stat().st_size} for name, path in files.items()},
            "not_included": list(NOT_INCLUDED),
        }
        partial = out.with_name(f".{out.name}.partial")
        try:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                raw = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime = len(raw), int(dt.datetime.now(dt.UTC).timestamp())
                tar.addfile(info, io.BytesIO(raw))
                for name, path in files.items():
                    tar.add(path, arcname=name, recursive=False)
            with partial.open("rb") as handle:
                os.fsync(handle.fileno())
            partial.replace(out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return manifest


def checked_manifest(archive: Path, tar: tarfile.TarFile) -> dict:
    """The manifest of the opened ``archive``, with every member checked against it."""
    manifest = peek(archive)
    present = {m.name for m in tar.getmembers() if m.isfile()} - {MANIFEST}
    listed = set(manifest["members"])
    if present != listed:
        raise BackupError(f"备份文件不完整或被改动：成员与清单不符（{', '.join(sorted(present ^ listed)[:3])}）")
    strangers = [n for n in listed - {SQLITE_MEMBER, PG_MEMBER} if not _attachment_sha(n, manifest)]
    if strangers:
        raise BackupError(f"备份文件含有不认识的成员：{', '.join(sorted(strangers)[:3])}")
    for name, expected in manifest["members"].items():
        digest = hashlib.sha256()
        handle = _member(tar, name)
        for block in iter(lambda h=handle: h.read(1 << 20), b""):  # type: ignore[misc]
            digest.update(block)
        if digest.hexdigest() != expected["sha256"]:
            raise BackupError(f"备份文件已损坏：{name} 的 sha256 与清单不符")
    return manifest


def _attachment_sha(name: str, manifest: dict) -> str | None:
    """The sha256 an attachment member is named by, if it is one and its content is that hash."""
    found = ATTACHMENT_MEMBER.match(name)
    if found is None or manifest["members"][name]["sha256"] != found.group(1):
        return None
    return found.group(1)


def peek(archive: Path) -> dict:
    """The manifest of ``archive``, unchecked (``restore`` checks every member against it)."""
    try:
        with tarfile.open(archive, "r:") as tar:
            manifest = json.loads(_member(tar, MANIFEST).read())
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"无法打开备份文件 {archive}：{exc}") from exc
    except (KeyError, json.JSONDecodeError) as exc:
        raise BackupError("不是枫桥备份文件：缺少或无法读取 manifest.json") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"不支持的备份格式 {found!r}（本程序读取 {FORMAT}）")
    missing = [key for key in ("node", "database", "counts", "members") if key not in manifest]
    if missing:
        raise BackupError(f"备份清单缺少 {'、'.join(missing)}")
    return manifest


def _member(tar: tarfile.TarFile, name: str) -> io.BufferedReader:
    handle = tar.extractfile(name)
    if handle is None:
        raise KeyError(name)
    return handle  # type: ignore[return-value]


def _extract(tar: tarfile.TarFile, name: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    with partial.open("wb") as handle:
        shutil.copyfileobj(_member(tar, name), handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(dest)


def _refuse_non_empty(target: Target) -> None:
    tables = dbcopy.table_names(target.url)
    if tables:
        raise BackupError(f"目标数据库不是空的（已有 {len(tables)} 张表），拒绝覆盖：请恢复到一个新的空数据库")
    if target.attachments.exists() and any(target.attachments.iterdir()):
        raise BackupError(f"附件目录 {target.attachments} 不是空的，拒绝覆盖")


def _restore_database(tar: tarfile.TarFile, manifest: dict, target: Target, *, pg_bin_dir: Path | None) -> None:
    if target.is_sqlite:
        path = dbcopy.sqlite_path(target.url)
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)  # an empty file a failed start left behind
        _extract(tar, SQLITE_MEMBER, path)  # written beside it, then renamed: all or nothing
        return
    with tempfile.TemporaryDirectory(prefix=".fq-restore-") as scratch:
        dump = Path(scratch) / PG_MEMBER
        _extract(tar, PG_MEMBER, dump)
        dumped_by = manifest.get("pg_dump_version", "")
        dbcopy.restore_postgres(dump, target.url, dumped_by=dumped_by, pg_bin_dir=pg_bin_dir)


def restore(archive: Path, target: Target, *, allow_other_node: bool = False, pg_bin_dir: Path | None = None) -> dict:
    """Bring the backup ``archive`` back as ``target``'s state (an empty database and folder)."""
    try:
        tar = tarfile.open(archive, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"无法打开备份文件 {archive}：{exc}") from exc
    with tar:
        manifest = checked_manifest(archive, tar)
        refusal = node_refusal(manifest["node"], target.code, allowed=allow_other_node)
        if refusal is not None:
            raise BackupError(refusal)
        kind = "sqlite" if target.is_sqlite else "postgresql"
        if manifest["database"] != kind:
            raise BackupError(f"备份来自 {manifest['database']} 数据库，不能恢复到 {kind} 数据库")
        _refuse_non_empty(target)
        files = AttachmentStore(target.attachments)
        try:  # the attachments first: the database, restored last and at once, says it is done
            for name in manifest["members"]:
                sha256 = _attachment_sha(name, manifest)
                if sha256 is not None:
                    _extract(tar, name, files.path(sha256))
            _restore_database(tar, manifest, target, pg_bin_dir=pg_bin_dir)
        except BaseException:
            shutil.rmtree(target.attachments, ignore_errors=True)  # it was empty: leave it so
            raise
    with dbcopy.connect(target.url) as conn:
        restored = dbcopy.inventory(conn)
    if restored.counts != manifest["counts"]:
        tables = set(restored.counts) | set(manifest["counts"])
        differ = sorted(t for t in tables if restored.counts.get(t) != manifest["counts"].get(t))
        raise BackupError(f"恢复后的行数与备份清单不符：{', '.join(differ)}")
    return manifest


# -- the command line ---------------------------------------------------------------------------


def _target(args: argparse.Namespace, settings: BackupSettings, *, fallback_code: str = "") -> Target:
    code = args.code or settings.node_code or fallback_code
    if not code:
        raise BackupError("请用 --code 或 FQ_NODE_CODE 指明节点的区划代码")
    tier_of(code, field="--code")
    data_dir = args.data_dir or settings.data_dir
    url = args.database or settings.database_url or f"sqlite:///{(data_dir / f'{code}.db').resolve()}"
    return Target(code=code, url=url, data_dir=data_dir)


def _summary(manifest: dict) -> str:
    counts = manifest["counts"]
    return (
        f"节点 {manifest['node']}（{tier_of(manifest['node']).label}），数据库结构版本 {manifest['schema_revision']}，"
        f"案件 {counts.get('case_record', 0)} 件、事件 {counts.get('case_event', 0)} 条、"
        f"审计记录 {counts.get('audit_log', 0)} 条、附件 {counts.get('attachment', 0)} 个"
    )


def _backup_command(args: argparse.Namespace) -> int:
    settings = BackupSettings()
    try:
        target = _target(args, settings)
        manifest = backup(target, args.out, pg_bin_dir=settings.pg_bin_dir)
    except FengqiaoError as exc:
        print(f"备份失败：{exc.message}", file=sys.stderr)
        return 1
    print(f"已备份到 {args.out}：{_summary(manifest)}（{manifest['taken_at']}）")
    print("注意：密钥不在备份中（FQ_TOKEN_SECRET、FQ_PERSONAL_DATA_KEY、报送签名密钥、TLS 私钥），须另行保管")
    return 0


def _restore_command(args: argparse.Namespace) -> int:
    settings = BackupSettings()
    try:
        backup_code = str(peek(args.file).get("node", ""))
        target = _target(args, settings, fallback_code=backup_code)
        manifest = restore(args.file, target, allow_other_node=args.allow_other_node, pg_bin_dir=settings.pg_bin_dir)
    except FengqiaoError as exc:
        print(f"恢复失败：{exc.message}", file=sys.stderr)
        return 1
    print(f"已恢复节点 {target.code}：{_summary(manifest)}，备份时间 {manifest['taken_at']}")
    print("请先放回本节点的密钥（FQ_TOKEN_SECRET、FQ_PERSONAL_DATA_KEY 等）再启动节点；启动时自动升级数据库结构")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fengqiao backup`` and ``fengqiao restore`` to the command line."""
    where = {
        "--code": "division code of the node (default FQ_NODE_CODE)",
        "--database": "the node's database URL (default DATABASE_URL, else <data-dir>/<code>.db)",
        "--data-dir": "the node's data directory (default FQ_DATA_DIR): attachments/<code>/",
    }
    taking = sub.add_parser("backup", help="a consistent online backup of a node's database and attachments (no keys)")
    taking.add_argument("--out", type=Path, required=True, help="the backup file to write (a tar; must not exist)")
    bringing = sub.add_parser("restore", help="restore a backup onto an empty database and data directory")
    bringing.add_argument("file", type=Path, help="the backup file (from fengqiao backup)")
    bringing.add_argument(
        "--allow-other-node", dest="allow_other_node", action="store_true", help="restore a backup of another node"
    )
    for command in (taking, bringing):
        command.add_argument("--code", help=where["--code"])
        command.add_argument("--database", help=where["--database"])
        command.add_argument("--data-dir", dest="data_dir", type=Path, help=where["--data-dir"])
    taking.set_defaults(run=_backup_command)
    bringing.set_defaults(run=_restore_command)
