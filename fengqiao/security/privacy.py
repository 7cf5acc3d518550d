"""Masking of personal data for views that must not show it: the parties (names, ID numbers,
phones), the address (cut to the village or community), the coordinates (to about a kilometre),
and ID and phone numbers and the parties' names wherever they appear in free text (description,
notes, slips). A masked case is what every case list shows (but to the roles allowed personal
data in lists) and what a case's detail shows to the roles without ``pii.read``.

Pure functions over the JSON form of cases and events (``google.protobuf.json_format``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


# The cut keeps the address up to its village or community (else its town), never the rest.
_VILLAGE_LEVEL = re.compile(r"^.*?(?:村民委员会|居民委员会|居委会|社区|村|嘎查)")
_TOWN_LEVEL = re.compile(r"^.*?(?:街道办事处|街道|镇|乡|苏木)")
CUT = "***"


def cut_address(address: str) -> str:
    """山东省菏泽市牡丹区王浩屯镇前王村3组12号 → 山东省菏泽市牡丹区王浩屯镇前王村***; an address
    with no village or community falls back to its town, and one with neither is hidden."""
    if not address:
        return ""
    found = _VILLAGE_LEVEL.match(address) or _TOWN_LEVEL.match(address)
    if found is None:
        return CUT
    kept = redact_text(found.group(0))
    return kept if found.end() == len(address) else kept + CUT


# Fields holding codes, ids and hashes, never free text: kept as they are.
_IDENTIFIERS = frozenset({
    "id", "case_id", "receipt_no", "origin_node", "holder_node", "division_code", "node", "escalation_to",
    "client_request_id", "attachments", "photos", "signatures", "sealed_personal", "subtask_id", "at",
})  # fmt: skip


def _redact_tree(value: Any, names: Sequence[str], key: str = "") -> Any:
    if key in _IDENTIFIERS:
        return value
    if isinstance(value, str):
        return redact_text(value, names)
    if isinstance(value, list):
        return [_redact_tree(item, names, key) for item in value]
    if isinstance(value, dict):
        return {k: _redact_tree(v, names, k) for k, v in value.items()}
    return value


def _mask_location(location: dict[str, Any]) -> dict[str, Any]:
    masked = {**location, "address": cut_address(location.get("address", ""))}
    for axis in ("latitude", "longitude"):
        if isinstance(location.get(axis), int | float):
            masked[axis] = round(location[axis], 2)
    return masked


def party_names(case: dict[str, Any]) -> list[str]:
    """The parties' names in a case (JSON), to be masked wherever they appear."""
    return [p.get("name", "") for p in case.get("parties", [])]


def mask_case(case: dict[str, Any]) -> dict[str, Any]:
    """A case (JSON) with nothing that identifies a person: parties masked, the address cut, the
    coordinates rounded, ID and phone numbers and the parties' names masked in all free text."""
    names = party_names(case)
    masked: dict[str, Any] = _redact_tree({k: v for k, v in case.items() if k not in ("parties", "location")}, names)
    if "parties" in case:
        masked["parties"] = [mask_party(p) for p in case["parties"]]
    if "location" in case:
        masked["location"] = _mask_location(case["location"])
    return masked


def mask_event(event: dict[str, Any], names: Sequence[str] = ()) -> dict[str, Any]:
    """An event (JSON) masked as its case is: the ``received`` event carries the case itself; the
    others' slips are free text (``names``: the case's parties, masked wherever they appear)."""
    received = event.get("received")
    if received and "case" in received:
        names = [*names, *party_names(received["case"])]
        return {**_redact_tree(event, names), "received": {**received, "case": mask_case(received["case"])}}
    masked: dict[str, Any] = _redact_tree(event, names)
    return masked


def redact_text(text: str, names: Iterable[str] = ()) -> str:
    """Free text with ID numbers, phone numbers and the given names masked."""
    text = ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)
    text = PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    for name in sorted({n for n in names if len(n) >= 2}, key=len, reverse=True):
        text = text.replace(name, mask_name(name))
    return text
