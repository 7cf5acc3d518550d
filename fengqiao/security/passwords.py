"""Operator passwords: Argon2id through pwdlib, with the cost parameters stored in each hash.

New hashes are ``$argon2id$v=19$m=…,t=…,p=…$salt$hash`` (RFC 9106's low-memory profile:
64 MiB, 3 passes, 4 lanes), so the cost can be raised later and every stored hash still
verifies. Hashes of the earlier scheme (``scrypt$salt$hash`` at N=2^14, r=8, p=1, parameters
not stored) still verify, and a successful login answers a new Argon2id hash to store instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

_LEGACY_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class LegacyScryptHasher:
    """Verifies the hashes written before Argon2id (``scrypt$salt$hash``); never writes one."""

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        """True for a hash of the earlier scheme."""
        text = hash.decode() if isinstance(hash, bytes) else hash
        return text.startswith("scrypt$")

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        """Refused: new hashes are Argon2id."""
        raise NotImplementedError("scrypt hashes are only verified, never written")

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        """True when ``password`` matches the stored scrypt hash."""
        text = hash.decode() if isinstance(hash, bytes) else hash
        secret = password.encode() if isinstance(password, str) else password
        try:
            _, salt_b64, digest_b64 = text.split("$")
            salt, expected = base64.b64decode(salt_b64, validate=True), base64.b64decode(digest_b64, validate=True)
        except (ValueError, binascii.Error):
            return False
        digest = hashlib.scrypt(secret, salt=salt, dklen=32, **_LEGACY_SCRYPT)
        return hmac.compare_digest(digest, expected)

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        """Always: a scrypt hash is replaced by an Argon2id one at the next login."""
        return True


_HASHING = PasswordHash((Argon2Hasher(), LegacyScryptHasher()))


def hash_password(password: str) -> str:
    """A new Argon2id hash of ``password`` (random salt, parameters in the hash)."""
    return _HASHING.hash(password)


def verify_password(password: str, stored: str) -> tuple[bool, str | None]:
    """Whether ``password`` matches ``stored``, and the hash to store instead when the stored one
    is of an older scheme or weaker parameters (None when it is current). An empty or unknown
    hash never matches."""
    try:
        return _HASHING.verify_and_update(password, stored)
    except UnknownHashError:
        return False, None


@lru_cache(maxsize=1)
def _decoy() -> str:
    return hash_password("no account has this password")


def spend_like_a_check(password: str) -> None:
    """Verify against a decoy hash, so that a login for an unknown account takes as long as a
    wrong password does (no account names guessed from the answer's timing)."""
    _HASHING.verify(password, _decoy())
