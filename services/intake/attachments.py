"""Attachments stored content-addressed (sha256) on the node's disk, with size and type limits.

A case refers to attachments by hash; bytes travel to another tier only when asked for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

from sqlmodel import Session

from fengqiao.errors import InvalidArgument, NotFound
from services.intake.models import AttachmentRecord

_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
}


def check(content: bytes, content_type: str, *, max_bytes: int, allowed: tuple[str, ...]) -> None:
    """Refuse empty, oversized, disallowed or mislabelled content (pure)."""
    if not content:
        raise InvalidArgument("content", "附件内容为空")
    if len(content) > max_bytes:
        raise InvalidArgument("content", f"附件超过 {max_bytes // (1024 * 1024)} MB 上限")
    if content_type not in allowed:
        raise InvalidArgument("content_type", f"不支持的附件类型“{content_type}”，允许：{'、'.join(allowed)}")
    if not content.startswith(_MAGIC.get(content_type, (b"",))):
        raise InvalidArgument("content", f"附件内容与类型 {content_type} 不符")


def folder(data_dir: Path, node_code: str) -> Path:
    """Where a node's attachments live: ``<data_dir>/attachments/<code>`` (``fengqiao backup``
    copies them from there)."""
    return data_dir / "attachments" / node_code


class AttachmentStore:
    """Files under ``root/ab/cd/<sha256>``, written atomically; metadata in ``attachment``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def write(self, content: bytes) -> str:
        """Store the bytes (idempotent) and return their sha256."""
        digest = hashlib.sha256(content).hexdigest()
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(target)
        return digest

    def read(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except (FileNotFoundError, ValueError) as exc:
            raise NotFound(f"附件 {sha256} 不在本节点") from exc


def record(
    session: Session, *, sha256: str, size: int, content_type: str, filename: str, now: dt.datetime
) -> AttachmentRecord:
    existing = session.get(AttachmentRecord, sha256)
    if existing is not None:
        return existing
    row = AttachmentRecord(sha256=sha256, size=size, content_type=content_type, filename=filename, stored_at=now)
    session.add(row)
    return row


def find(session: Session, *, sha256: str) -> AttachmentRecord:
    row = session.get(AttachmentRecord, sha256)
    if row is None:
        raise NotFound(f"附件 {sha256} 不在本节点")
    return row


def require_all(session: Session, *, hashes: list[str], field: str) -> None:
    """Every hash must name an attachment stored here."""
    for i, digest in enumerate(hashes):
        if session.get(AttachmentRecord, digest) is None:
            raise InvalidArgument(f"{field}[{i}]", f"附件 {digest} 未上传到本节点")
