"""The provincial feed (省级数据上报): a county's figures per period, PII-free and signed.

The document follows ``schema/provincial-feed.v1.json``. It holds only strings, integers,
booleans, nulls, arrays and objects — rates and means carry their exact integer parts and the
value as a decimal string — so its canonical form (keys sorted, no spaces, UTF-8, as
``canonical`` writes it) is the RFC 8785 (JCS) form any verifier can rebuild. The signature is
Ed25519 over the canonical form of the document without its ``signature`` member, in base64;
``key_id`` names the county's key (first 16 hex digits of the SHA-256 of the raw public key).

Nothing about a case other than counts goes in: no parties, descriptions, addresses, grids,
reporters or case numbers — only node codes and names, which are public.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.federation import figures, keys
from services.federation.rules import Period
from services.federation.snapshot import Snapshot

SCHEMA_VERSION = "1.0.0"
SCHEMA_ID = "https://fengqiao.example/schemas/provincial-feed.v1.json"
SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "provincial-feed.v1.json"


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def canonical(document: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8 (the JCS form for the value types the feed uses)."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _when(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def figures_json(tally: figures.Tally) -> dict[str, Any]:
    """The figures of one node as feed JSON."""
    out: dict[str, Any] = {name: getattr(tally, name) for name in figures.COUNTS}
    for name, (num, den, value) in figures.rates(tally).items():
        out[name] = {"numerator": num, "denominator": den, "value": f"{value:.4f}"}
    out["satisfaction"] = {
        "sum": tally.satisfaction_sum,
        "count": tally.followed_up,
        "mean": f"{figures.ratio(tally.satisfaction_sum, tally.followed_up):.2f}",
    }
    out["handling_time"] = {
        "total_seconds": round(tally.handling_seconds),
        "count": tally.closed,
        "mean_hours": f"{figures.ratio(tally.handling_seconds / 3600, tally.closed):.2f}",
    }
    return out


def build(
    *,
    county: tuple[str, str],
    period: Period,
    generated_at: dt.datetime,
    county_tally: figures.Tally,
    towns: Sequence[tuple[str, str, figures.Tally, dt.datetime | None, bool]],
    stale_nodes: Sequence[str],
    stale_after: dt.timedelta,
) -> dict[str, Any]:
    """The unsigned feed: ``county`` is (code, name); each town is (code, name, tally, latest, stale)."""
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "county": {"code": county[0], "name": county[1]},
        "period": {"label": period.label, "start": _when(period.start), "end": _when(period.end)},
        "generated_at": _when(generated_at),
        "stale_after_seconds": int(stale_after.total_seconds()),
        "stale_nodes": sorted(stale_nodes),
        "figures": figures_json(county_tally),
        "towns": [
            {"code": code, "name": name, "latest_event_at": _when(latest), "stale": stale, "figures": figures_json(t)}
            for code, name, t, latest, stale in towns
        ],
    }


def from_snapshot(snap: Snapshot) -> dict[str, Any]:
    """The unsigned feed of the snapshot's root (a county) and its towns."""
    county = snap.nodes[snap.root]
    return build(
        county=(county.code, county.name),
        period=snap.period,
        generated_at=snap.generated_at,
        county_tally=snap.tallies[county.code],
        towns=[
            (t.code, t.name, snap.tallies[t.code], snap.latest[t.code], snap.stale(t.code))
            for t in snap.children(county.code)
        ],
        stale_nodes=snap.stale_nodes(county.code),
        stale_after=snap.stale_after,
    )


def sign(document: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The document with ``key_id`` and ``signature`` added."""
    body = {k: v for k, v in document.items() if k != "signature"}
    body["key_id"] = keys.key_id(key.public_key())
    body["signature"] = base64.b64encode(key.sign(canonical(body))).decode("ascii")
    return body


def verify(document: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    """Whether the document's signature is valid for ``public_key`` and names that key."""
    signature = document.get("signature")
    if not isinstance(signature, str) or document.get("key_id") != keys.key_id(public_key):
        return False
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        public_key.verify(base64.b64decode(signature, validate=True), canonical(body))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
