"""A node's keyring file (``FQ_PERSONAL_KEYRING``): the county's personal-data keys, the current
one sealing, the older ones still opening what they sealed (docs/ARCHITECTURE.md, *Security*).

The file is JSON, written by ``fengqiao keys rotate`` (readable by its owner only)::

    {"current": "5a1b2c3d",
     "keys": [{"id": "59eedc3b", "key": "<base64 of 32 bytes>", "added_at": "2026-12-02T10:00:00+00:00"},
              {"id": "5a1b2c3d", "key": "…", "added_at": "…"}]}

Every process of a node reads it and looks again when it changes, so a rotation takes effect in
a running node without a restart. ``FQ_PERSONAL_DATA_KEY``, the single key of earlier releases,
still works alone, and beside a keyring file it is one of the older keys (nothing it sealed is
lost when a node moves to a keyring).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from fengqiao.security.sealing import Keyring, Keys, key_id, parse_key

log = logging.getLogger(__name__)


class KeyringError(ValueError):
    """A keyring file that cannot be used (the message says why, in Chinese)."""


def _entries(path: Path) -> tuple[str, list[dict[str, Any]]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        current, entries = document["current"], list(document["keys"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyringError(f"密钥环文件 {path} 无法读取：{exc}") from exc
    return str(current), entries


def read(path: Path) -> tuple[Keys, dict[str, str]]:
    """The keys of the file at ``path`` and when each was added, or ``KeyringError``."""
    current, entries = _entries(path)
    by_id: dict[str, bytes] = {}
    added: dict[str, str] = {}
    for entry in entries:
        try:
            raw = parse_key(str(entry["key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyringError(f"密钥环文件 {path} 中有一把密钥格式不对：{exc}") from exc
        kid = key_id(raw)
        if entry.get("id", kid) != kid:
            raise KeyringError(f"密钥环文件 {path} 中密钥编号 {entry.get('id')} 与密钥不符（应为 {kid}）")
        by_id[kid], added[kid] = raw, str(entry.get("added_at", ""))
    if current not in by_id:
        raise KeyringError(f"密钥环文件 {path} 的当前密钥 {current} 不在其中")
    return Keys(current=current, by_id=by_id), added


def write(path: Path, keys: Keys, added: dict[str, str]) -> None:
    """Replace the file at ``path`` with ``keys`` at once (a new file renamed over it), owner-only."""
    document = {
        "current": keys.current,
        "keys": [
            {"id": kid, "key": base64.b64encode(raw).decode(), "added_at": added.get(kid, "")}
            for kid, raw in keys.by_id.items()
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def with_key(keys: Keys | None, raw: bytes) -> Keys:
    """``keys`` with ``raw`` added (if new) and made current."""
    by_id = dict(keys.by_id) if keys is not None else {}
    by_id.setdefault(key_id(raw), raw)
    return Keys(current=key_id(raw), by_id=by_id)


def rotate(path: Path, raw: bytes, *, before: Keys | None, now: dt.datetime) -> Keys:
    """Make ``raw`` the current key of the keyring file at ``path``, keeping every older key.
    A missing file starts from ``before`` (the node's key until now); rotating to the current
    key again changes nothing."""
    keys, added = read(path) if path.exists() else (before, {})
    if keys is not None and before is not None:  # the environment's key stays an older key
        keys = Keys(current=keys.current, by_id={**before.by_id, **keys.by_id})
    rotated = with_key(keys, raw)
    for kid in rotated.by_id:
        added.setdefault(kid, now.isoformat() if kid == rotated.current else "")
    write(path, rotated, added)
    return rotated


class KeyringFile:
    """The keys of a node: its keyring file (read again when it changes) and its
    ``FQ_PERSONAL_DATA_KEY`` (the current key while there is no file, an older one beside it)."""

    def __init__(self, path: Path | None, env_key: bytes | None) -> None:
        if path is None and env_key is None:
            raise KeyringError("未配置个人信息密钥：请设置 FQ_PERSONAL_KEYRING（密钥环文件）或 FQ_PERSONAL_DATA_KEY")
        self.path = path
        self._env = Keys.of(env_key) if env_key is not None else None
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._keys: Keys | None = None
        self._load(first=True)

    def _load(self, *, first: bool = False) -> Keys:
        stamp = self._stamp()
        if stamp is not None and stamp == self._seen and self._keys is not None:
            return self._keys
        if stamp is None:
            if self._env is None:
                raise KeyringError(f"密钥环文件 {self.path} 不存在，且未设置 FQ_PERSONAL_DATA_KEY")
            keys = self._env
        else:
            assert self.path is not None
            try:
                keys, _ = read(self.path)
            except KeyringError:
                if first or self._keys is None:
                    raise
                log.warning("keyring file %s cannot be read; keeping the keys read before", self.path, exc_info=True)
                return self._keys
            if self._env is not None:
                keys = Keys(current=keys.current, by_id={**self._env.by_id, **keys.by_id})
        if self._keys is not None and keys.current != self._keys.current:
            log.info("personal data key rotated: now sealing with %s", keys.current)
        self._seen, self._keys = stamp, keys
        return keys

    def _stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def __call__(self) -> Keys:
        """The keys now."""
        with self._lock:
            return self._load()


def node_keyring(path: Path | None, env_key: str | None) -> Keyring:
    """The keyring of a node from its settings (``FQ_PERSONAL_KEYRING``, ``FQ_PERSONAL_DATA_KEY``)."""
    return Keyring(KeyringFile(path, parse_key(env_key) if env_key else None))
