"""Masking of parties' personal data (names, ID numbers, phones) for views that must not show it.

Pure functions over the JSON form of cases and events (``google.protobuf.json_format``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
PHONE = re.compile(r"(?<![0-9])(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})(?![0-9])")


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


def mask_id_number(id_number: str) -> str:
    """371702198503120045 → 371702********0045 (division and last four kept)."""
    return id_number[:6] + "*" * 8 + id_number[-4:] if len(id_number) >= 12 else "*" * len(id_number)


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)


def mask_party(party: dict[str, Any]) -> dict[str, Any]:
    """The party with name, ID number and phone masked (role kept)."""
    return {
        **party,
        "name": mask_name(party.get("name", "")),
        "id_number": mask_id_number(party.get("id_number", "")),
        "phone": mask_phone(party.get("phone", "")),
    }


def mask_case(case: dict[str, Any]) -> dict[str, Any]:
    """A case (JSON) with its parties masked."""
    if not case.get("parties"):
        return case
    return {**case, "parties": [mask_party(p) for p in case["parties"]]}


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event (JSON); the ``received`` event carries the case with its parties."""
    received = event.get("received")
    if not received or "case" not in received:
        return event
    return {**event, "received": {**received, "case": mask_case(received["case"])}}


def redact_text(text: str, names: Iterable[str] = ()) -> str:
    """Free text with ID numbers, phone numbers and the given names masked."""
    text = ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)
    text = PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    for name in sorted({n for n in names if len(n) >= 2}, key=len, reverse=True):
        text = text.replace(name, mask_name(name))
    return text
