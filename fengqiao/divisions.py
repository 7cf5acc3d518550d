"""Division codes (统计用区划代码), tiers, and the NATS names derived from them.

County codes have 6 digits, towns 9, villages 12; a code's parent is its prefix. Every NATS
subject has the fixed layout ``fq.<county>.<town>.<village>.<kind>.<type>`` with ``_`` for a
tier the node does not have, so permissions and stream filters are plain wildcards.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from fengqiao.errors import InvalidArgument


class Tier(enum.IntEnum):
    """Tier of a center; the values equal ``fengqiao.v1.Tier``."""

    COUNTY = 1
    TOWN = 2
    VILLAGE = 3

    @property
    def label(self) -> str:
        return {Tier.COUNTY: "县级", Tier.TOWN: "乡镇级", Tier.VILLAGE: "村级"}[self]


_LENGTHS = {6: Tier.COUNTY, 9: Tier.TOWN, 12: Tier.VILLAGE}
_DIGITS = re.compile(r"^[0-9]+$")
NO_TOKEN = "_"


def tier_of(code: str, *, field: str = "division_code") -> Tier:
    """The tier of a division code, or ``InvalidArgument`` if it is not one."""
    if not _DIGITS.match(code or "") or len(code) not in _LENGTHS:
        raise InvalidArgument(field, f"“{code}”不是有效的行政区划代码（县6位、乡镇9位、村12位数字）")
    return _LENGTHS[len(code)]


def parent_code(code: str) -> str | None:
    """The code of the tier above, ``None`` for a county."""
    tier = tier_of(code)
    if tier is Tier.VILLAGE:
        return code[:9]
    if tier is Tier.TOWN:
        return code[:6]
    return None


def is_within(code: str, ancestor: str) -> bool:
    """True when ``code`` is ``ancestor`` or lies below it."""
    return code.startswith(ancestor)


def subject_tokens(code: str) -> tuple[str, str, str]:
    """The county, town and village tokens of a node's subjects."""
    tier = tier_of(code)
    county = code[:6]
    town = code[:9] if tier >= Tier.TOWN else NO_TOKEN
    village = code if tier is Tier.VILLAGE else NO_TOKEN
    return county, town, village


UP_KINDS = ("case", "project", "joint", "alert", "directive", "audit")
"""The kinds of message a node publishes upward into its events stream (its parent sources them);
``audit`` carries the signed checkpoints of its audit chain."""


def event_subject(code: str, kind: str, event_type: str) -> str:
    """The subject a node publishes its own events of ``kind`` (one of ``UP_KINDS``) on."""
    county, town, village = subject_tokens(code)
    return f"fq.{county}.{town}.{village}.{kind}.{event_type}"


def case_subject(code: str, event_type: str) -> str:
    """The subject a node publishes its own case events on."""
    return event_subject(code, "case", event_type)


def own_case_subjects(code: str) -> str:
    """Wildcard over the case events a node itself publishes."""
    county, town, village = subject_tokens(code)
    return f"fq.{county}.{town}.{village}.case.>"


def own_up_subjects(code: str) -> list[str]:
    """Wildcards over everything a node itself publishes upward: one per kind of ``UP_KINDS``."""
    county, town, village = subject_tokens(code)
    return [f"fq.{county}.{town}.{village}.{kind}.>" for kind in UP_KINDS]


def subtree_subjects(code: str, *, kind: str | None = None) -> str:
    """Wildcard over the subjects of a node and everything below it, of one ``kind`` if given."""
    county, town, village = subject_tokens(code)
    if kind is not None:
        town = "*" if town == NO_TOKEN else town
        village = "*" if village == NO_TOKEN else village
        return f"fq.{county}.{town}.{village}.{kind}.>"
    if village != NO_TOKEN:
        return f"fq.{county}.{town}.{village}.>"
    if town != NO_TOKEN:
        return f"fq.{county}.{town}.>"
    return f"fq.{county}.>"


def address_tokens(code: str) -> str:
    """How a message addressed down to ``code`` names it: ``<town>.<village>`` (``_`` if none).

    A county-level address does not occur: messages only go down to towns and villages.
    """
    _, town, village = subject_tokens(code)
    return f"{town}.{village}"


def down_subject(publisher: str, addressee: str, kind: str, event_type: str) -> str:
    """The subject ``publisher`` uses to send something down to ``addressee`` (below it)."""
    county, town, village = subject_tokens(publisher)
    return f"fq.{county}.{town}.{village}.down.{address_tokens(addressee)}.{kind}.{event_type}"


def own_down_subjects(code: str) -> str:
    """Wildcard over what a node itself sends down."""
    county, town, village = subject_tokens(code)
    return f"fq.{county}.{town}.{village}.down.>"


def down_filter(code: str, *, sender: str | None = None, kind: str | None = None) -> str:
    """Messages sent down to ``code`` or below it — by ``sender`` (any publisher when None),
    of ``kind`` (any kind when None)."""
    _, town, village = subject_tokens(code)
    publisher = "*.*.*" if sender is None else ".".join(subject_tokens(sender))
    if kind is None:
        target = town if village == NO_TOKEN else f"{town}.{village}"
        return f"fq.{publisher}.down.{target}.>"
    return f"fq.{publisher}.down.{town}.{'*' if village == NO_TOKEN else village}.{kind}.>"


class Route(NamedTuple):
    """What a subject says of its message: the node that published it, the node it is sent down
    to (None for the publisher's own event), its kind and its event type."""

    sender: str
    to: str | None
    kind: str
    event_type: str


def _node_of(county: str, town: str, village: str) -> str:
    """The node whose subject tokens these are, or ``InvalidArgument``."""
    code = village if village != NO_TOKEN else town if town != NO_TOKEN else county
    tier_of(code, field="subject")
    if subject_tokens(code) != (county, town, village):
        raise InvalidArgument("subject", f"“{county}.{town}.{village}”不是一个中心的主题段")
    return code


def route_of(subject: str) -> Route:
    """Read a subject of ``event_subject`` or ``down_subject`` back: who published it, to whom.

    ``InvalidArgument`` for a subject of any other layout."""
    tokens = subject.split(".")
    if len(tokens) == 6 and tokens[0] == "fq" and tokens[4] != "down":
        return Route(_node_of(*tokens[1:4]), None, tokens[4], tokens[5])
    if len(tokens) == 9 and tokens[0] == "fq" and tokens[4] == "down":
        sender = _node_of(*tokens[1:4])
        to = _node_of(sender[:6], *tokens[5:7])
        return Route(sender, to, tokens[7], tokens[8])
    raise InvalidArgument("subject", f"“{subject}”不是本系统的消息主题")


def down_stream(code: str) -> str:
    """The stream holding what a node sends down, plus what its parent sent down for its subtree."""
    tier_of(code)
    return f"FQ_DOWN_{code}"


def events_stream(code: str) -> str:
    """The JetStream stream holding a node's own events plus those sourced from below."""
    tier_of(code)
    return f"FQ_EVENTS_{code}"


def inbox_prefix(code: str) -> str:
    """The reply subjects of a node's own clients: its own, so a leaf's permissions can keep
    one node from overhearing the replies another node's services get."""
    tier_of(code)
    return f"_INBOX_{code}"


def up_deliver(child: str) -> str:
    """Where a parent's source of ``child``'s events stream is delivered (across the leaf)."""
    tier_of(child)
    return f"fqs.{child}"


def down_deliver(child: str) -> str:
    """Where ``child``'s source of its parent's down stream is delivered (across the leaf)."""
    tier_of(child)
    return f"fqd.{child}"
