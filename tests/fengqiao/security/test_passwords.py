"""Passwords: Argon2id with its parameters in the hash; hashes of the earlier scrypt scheme still
verify and are replaced by Argon2id ones."""

from __future__ import annotations

import base64
import hashlib

from fengqiao.security import passwords


def old_scrypt_hash(password: str, salt: bytes = b"0123456789abcdef") -> str:
    """A hash as the earlier scheme wrote it: ``scrypt$salt$hash``, N=2^14, r=8, p=1."""
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def test_a_new_hash_is_argon2id_with_its_parameters_and_a_random_salt() -> None:
    first, second = passwords.hash_password("Duty-officer-01"), passwords.hash_password("Duty-officer-01")
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and first != second
    assert passwords.verify_password("Duty-officer-01", first) == (True, None)
    assert passwords.verify_password("Duty-officer-02", first) == (False, None)


def test_an_old_scrypt_hash_verifies_and_is_answered_with_an_argon2id_one() -> None:
    stored = old_scrypt_hash("Duty-officer-01")
    ok, rehashed = passwords.verify_password("Duty-officer-01", stored)
    assert ok and rehashed is not None and rehashed.startswith("$argon2id$")
    assert passwords.verify_password("Duty-officer-01", rehashed) == (True, None)
    assert passwords.verify_password("Duty-officer-02", stored) == (False, None)


def test_empty_garbled_or_unknown_hashes_never_match() -> None:
    for stored in ("", "scrypt$not-base64!$x", "scrypt$only-two", "$2b$12$bcrypt-is-not-accepted", "plain"):
        assert passwords.verify_password("anything", stored) == (False, None), stored
