"""Personal data sealed at rest (docs/ARCHITECTURE.md, *Security*): a case's parties and address, encrypted with the
county's current key (AES-256-GCM) before the case is stored or published, so databases, streams
and backups hold no names, ID numbers, phones or addresses in clear. Every node of a county holds
the county's keyring (``fengqiao/security/keyring.py``); the intake service opens cases for its
callers, and the HTTP layer decides who sees them in full (and audits it).

A sealed value is ``01 | key id (4 bytes) | nonce (12) | ciphertext``, the key id being the first
four bytes of the key's SHA-256: every node that holds a key derives the same id, and values
sealed before keyrings existed (the same layout, one key) open with the ring that holds that key.
A value under a key the node does not hold never fails a read: the case is answered with its
personal data left out and a note saying why (``personal_note``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fengqiao.errors import Undecryptable
from fengqiao.v1 import case_pb2 as pb

_VERSION = b"\x01"
_ID = 4
_NONCE = 12


class SealError(Undecryptable):
    """Sealed personal data that this node cannot open (a key it does not hold, or tampered)."""


def new_key() -> str:
    """A fresh key in the form ``FQ_PERSONAL_DATA_KEY`` takes (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(32)).decode()


def parse_key(text: str) -> bytes:
    """The 32 key bytes of a ``FQ_PERSONAL_DATA_KEY`` value, or ``ValueError``."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("FQ_PERSONAL_DATA_KEY must be base64") from exc
    if len(raw) != 32:
        raise ValueError("FQ_PERSONAL_DATA_KEY must hold 32 bytes (base64 of 32 random bytes)")
    return raw


def key_id(raw: bytes) -> str:
    """A key's id: 8 hex digits of its SHA-256, the same at every node holding the key."""
    return hashlib.sha256(raw).digest()[:_ID].hex()


def sealed_key_id(sealed: bytes) -> str | None:
    """The id of the key a sealed value is under (None: not a sealed value of a known layout)."""
    if sealed[:1] != _VERSION or len(sealed) < 1 + _ID + _NONCE:
        return None
    return sealed[1 : 1 + _ID].hex()


@dataclasses.dataclass(frozen=True)
class Keys:
    """The keys a node holds, by id, and which one seals."""

    current: str
    by_id: Mapping[str, bytes]

    @classmethod
    def of(cls, *raws: bytes) -> Keys:
        """The keys ``raws``, the last one current."""
        if not raws:
            raise ValueError("a keyring needs at least one key")
        return cls(current=key_id(raws[-1]), by_id={key_id(r): r for r in raws})


KEYS_UNKNOWN = (
    "个人信息由本节点未持有的密钥（编号 {id}）加密，无法解密，已隐去；请核对本节点的密钥环（FQ_PERSONAL_KEYRING）"
)
TAMPERED = "个人信息密文校验失败（可能被篡改），已隐去"
UNKNOWN_LAYOUT = "个人信息的密文格式无法识别，已隐去"


class Keyring:
    """Seals with the current key and opens with the key a value names.

    ``source`` gives the keys; it is asked again at most every ``recheck_s`` when sealing (so a
    rotated keyring takes effect in a running node) and whenever a value names an unknown key.
    """

    def __init__(self, source: Callable[[], Keys], *, recheck_s: float = 1.0) -> None:
        self._source = source
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._keys = source()
        self._checked = time.monotonic()
        self._aeads: dict[str, AESGCM] = {}

    @classmethod
    def of(cls, *raws: bytes) -> Keyring:
        """A keyring of the keys ``raws`` for good, the last one current."""
        keys = Keys.of(*raws)
        return cls(lambda: keys)

    def keys(self, *, fresh: bool = False) -> Keys:
        """The keys now (asking the source again when ``fresh`` or when the last look is old)."""
        with self._lock:
            if fresh or time.monotonic() - self._checked >= self._recheck_s:
                self._keys, self._checked = self._source(), time.monotonic()
            return self._keys

    @property
    def current_id(self) -> str:
        """The id of the key new values are sealed with."""
        return self.keys().current

    def _aead(self, keys: Keys, kid: str) -> AESGCM:
        aead = self._aeads.get(kid)
        if aead is None:
            aead = self._aeads[kid] = AESGCM(keys.by_id[kid])
        return aead

    @staticmethod
    def _aad(case: pb.Case) -> bytes:
        return f"{case.origin_node}|{case.receipt_no}".encode()

    def _seal_personal(self, case: pb.Case, personal: pb.PersonalData) -> None:
        keys = self.keys()
        nonce = os.urandom(_NONCE)
        box = self._aead(keys, keys.current).encrypt(nonce, personal.SerializeToString(), self._aad(case))
        case.sealed_personal = _VERSION + bytes.fromhex(keys.current) + nonce + box

    def seal(self, case: pb.Case) -> None:
        """Move the parties and the address of ``case`` (in place) into ``sealed_personal``."""
        if not case.parties and not case.location.address:
            return
        self._seal_personal(case, pb.PersonalData(parties=case.parties, address=case.location.address))
        del case.parties[:]
        case.location.address = ""

    def open(self, case: pb.Case) -> pb.PersonalData:
        """The personal data sealed in ``case``, or ``SealError`` naming why it cannot be opened."""
        sealed = case.sealed_personal
        kid = sealed_key_id(sealed)
        if kid is None:
            raise SealError(UNKNOWN_LAYOUT)
        keys = self.keys()
        if kid not in keys.by_id:
            keys = self.keys(fresh=True)  # rotated meanwhile?
            if kid not in keys.by_id:
                raise SealError(KEYS_UNKNOWN.format(id=kid))
        nonce, box = sealed[1 + _ID : 1 + _ID + _NONCE], sealed[1 + _ID + _NONCE :]
        try:
            return pb.PersonalData.FromString(self._aead(keys, kid).decrypt(nonce, box, self._aad(case)))
        except InvalidTag as exc:
            raise SealError(TAMPERED) from exc

    def opened(self, case: pb.Case) -> pb.Case:
        """A copy of ``case`` with its parties and address back in place; if they cannot be
        opened, the case without them and with ``personal_note`` saying why (never an error:
        one unreadable case must not fail a list or the answer to a recorded step)."""
        if not case.sealed_personal:
            return case
        out = pb.Case()
        out.CopyFrom(case)
        out.ClearField("sealed_personal")
        try:
            personal = self.open(case)
        except SealError as exc:
            out.personal_note = exc.message
            return out
        out.parties.extend(personal.parties)
        out.location.address = personal.address
        return out

    def opened_event(self, event: pb.CaseEvent) -> pb.CaseEvent:
        """The event with the case of a ``received`` event opened (or noted, as ``opened``)."""
        if not event.HasField("received") or not event.received.case.sealed_personal:
            return event
        out = pb.CaseEvent()
        out.CopyFrom(event)
        out.received.case.CopyFrom(self.opened(event.received.case))
        return out

    def resealed(self, case: pb.Case) -> bool:
        """Seal ``case``'s personal data (in place) again under the current key: False when it is
        under the current key already or holds none; ``SealError`` when it cannot be opened."""
        if not case.sealed_personal or sealed_key_id(case.sealed_personal) == self.current_id:
            return False
        self._seal_personal(case, self.open(case))
        return True


def from_settings(secret: str) -> Keyring:
    """A keyring of one validated ``FQ_PERSONAL_DATA_KEY``."""
    return Keyring.of(parse_key(secret))


if __name__ == "__main__":  # python -m fengqiao.security.sealing: a new FQ_PERSONAL_DATA_KEY
    import sys

    sys.stdout.write(new_key() + "\n")
