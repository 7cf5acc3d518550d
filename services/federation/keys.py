"""A node's Ed25519 signing key (its audit checkpoints; at the county also the provincial feed):
a PEM file, created (mode 0600) on first start."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fengqiao.errors import Unavailable

log = logging.getLogger(__name__)


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The private key in ``path``; a new one is generated and written there if it is absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        log.info("generated the signing key %s (key id %s)", path, key_id(key.public_key()))
        return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise Unavailable(f"无法读取本中心的签名密钥 {path}：{exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise Unavailable(f"本中心的签名密钥 {path} 不是 Ed25519 私钥")
    return loaded


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
