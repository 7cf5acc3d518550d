"""Personal data sealed at rest (docs/ARCHITECTURE.md, *Security*): a case's parties and address, encrypted with the
county's key (AES-256-GCM) before the case is stored or published, so databases, streams and
backups hold no names, ID numbers, phones or addresses in clear. Every node of a county has
the key (``FQ_PERSONAL_DATA_KEY``); the intake service opens cases for its callers, and the
HTTP layer decides who sees them in full (and audits it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fengqiao.errors import Unavailable
from fengqiao.v1 import case_pb2 as pb

_VERSION = b"\x01"
_NONCE = 12


class SealError(Unavailable):
    """Sealed personal data that this key cannot open (another county's key, or tampered)."""


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


class PersonalKey:
    """Seals and opens the personal data of cases with one county's key."""

    def __init__(self, raw: bytes) -> None:
        self._aead = AESGCM(raw)
        self.key_id = hashlib.sha256(raw).digest()[:4]

    @staticmethod
    def _aad(case: pb.Case) -> bytes:
        return f"{case.origin_node}|{case.receipt_no}".encode()

    def seal(self, case: pb.Case) -> None:
        """Move the parties and the address of ``case`` (in place) into ``sealed_personal``."""
        if not case.parties and not case.location.address:
            return
        personal = pb.PersonalData(parties=case.parties, address=case.location.address)
        nonce = os.urandom(_NONCE)
        box = self._aead.encrypt(nonce, personal.SerializeToString(), self._aad(case))
        case.sealed_personal = _VERSION + self.key_id + nonce + box
        del case.parties[:]
        case.location.address = ""

    def opened(self, case: pb.Case) -> pb.Case:
        """A copy of ``case`` with its parties and address back in place."""
        if not case.sealed_personal:
            return case
        sealed = case.sealed_personal
        if sealed[:1] != _VERSION or sealed[1:5] != self.key_id:
            raise SealError("个人信息由另一把密钥加密，本节点无法解密（请核对 FQ_PERSONAL_DATA_KEY）")
        nonce, box = sealed[5 : 5 + _NONCE], sealed[5 + _NONCE :]
        try:
            personal = pb.PersonalData.FromString(self._aead.decrypt(nonce, box, self._aad(case)))
        except InvalidTag as exc:
            raise SealError("个人信息密文校验失败（可能被篡改）") from exc
        out = pb.Case()
        out.CopyFrom(case)
        out.ClearField("sealed_personal")
        out.parties.extend(personal.parties)
        out.location.address = personal.address
        return out

    def opened_event(self, event: pb.CaseEvent) -> pb.CaseEvent:
        """The event with the case of a ``received`` event opened."""
        if not event.HasField("received") or not event.received.case.sealed_personal:
            return event
        out = pb.CaseEvent()
        out.CopyFrom(event)
        out.received.case.CopyFrom(self.opened(event.received.case))
        return out


def from_settings(secret: str) -> PersonalKey:
    """The key of a validated ``FQ_PERSONAL_DATA_KEY``."""
    return PersonalKey(parse_key(secret))


if __name__ == "__main__":  # python -m fengqiao.security.sealing: a new FQ_PERSONAL_DATA_KEY
    import sys

    sys.stdout.write(new_key() + "\n")
