"""Audit checkpoints (docs/ARCHITECTURE.md, *Security*): every node with a parent signs the head
of its audit chain — row id, hash, time — with its Ed25519 key at least every
``audit_checkpoint_interval_s`` when the chain changed, and queues it in its outbox on its own
subject ``fq.<tokens>.audit.checkpoint``; its parent's events stream sources it like any other
event of the child. The parent checks it — published by the node it names, signed with that
node's key — and keeps it (``audit_checkpoint``); ``fengqiao audit verify --parent`` reads them
back with ``ListAuditCheckpoints``.

The key is the node's signing key (``keys``; at the county it also signs the provincial feed).
The parent pins the key of a child's first checkpoint: a checkpoint under another key, from
another node, or contradicting one already held is refused with the reason (a dead letter).
The first key is bound to the child's identity by its subject alone: with ``--tls-dir`` the leaf
link is the child's certificate from the county CA and may publish only the child's subjects.
The key itself is not certified by the county CA (yet): a key lost with its box is replaced by
deleting the child's rows in ``audit_checkpoint`` at the parent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, col, select

from fengqiao import outbox
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.decode import Decoder, Envelope, receive, written_within
from fengqiao.divisions import event_subject
from fengqiao.errors import PermissionDenied
from fengqiao.inbox import Handler
from fengqiao.security import audit
from fengqiao.v1 import federation_pb2 as pb
from services.federation.models import AuditCheckpointRecord

log = logging.getLogger(__name__)

KIND = "audit"
CONSUMER = "fq-audit-checkpoints"
WHAT = "审计检查点"


def subject(code: str) -> str:
    """Where ``code`` publishes its checkpoints: its own subject of kind ``audit``."""
    return event_subject(code, KIND, "checkpoint")


def signed_bytes(node: str, row_id: int, hash_: str, at: str) -> bytes:
    """What the signature covers: the canonical JSON of the checkpoint's statement."""
    return json.dumps(["fengqiao.audit.checkpoint", node, row_id, hash_, at], separators=(",", ":")).encode()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey, *, node: str, head: audit.Head, at: dt.datetime) -> pb.AuditCheckpoint:
    """The checkpoint of ``head`` signed by ``node`` with ``key``."""
    when = at.astimezone(dt.UTC).isoformat()
    signature = key.sign(signed_bytes(node, head.row_id, head.hash, when))
    return pb.AuditCheckpoint(
        node=node,
        row_id=head.row_id,
        hash=head.hash,
        at=when,
        public_key=raw_public(key.public_key()),
        signature=signature,
    )


def bad_signature(checkpoint: pb.AuditCheckpoint) -> str | None:
    """Why the checkpoint's signature does not hold under the key it names, or None."""
    try:
        public = Ed25519PublicKey.from_public_bytes(checkpoint.public_key)
        statement = signed_bytes(checkpoint.node, checkpoint.row_id, checkpoint.hash, checkpoint.at)
        public.verify(checkpoint.signature, statement)
    except (ValueError, InvalidSignature):
        return f"{WHAT}签名无效：不是 {checkpoint.node} 的密钥所签"
    return None


def from_its_node(envelope: Envelope[pb.AuditCheckpoint]) -> str | None:
    """A node publishes only its own checkpoints: the node named is the one whose subject it came on."""
    if envelope.event.node != envelope.sender:
        return f"伪造的{WHAT}：声称来自 {envelope.event.node}，实际由 {envelope.sender} 发出"
    return None


def keep(session: Session, checkpoint: pb.AuditCheckpoint, *, now: dt.datetime) -> None:
    """Keep a child's checkpoint after checking its signature, the child's pinned key (that of
    its first checkpoint held) and that it contradicts no checkpoint already held."""
    reason = bad_signature(checkpoint)
    if reason is not None:
        raise PermissionDenied(reason)
    key = checkpoint.public_key.hex()
    first = session.exec(
        select(AuditCheckpointRecord.public_key)
        .where(AuditCheckpointRecord.node == checkpoint.node)
        .order_by(col(AuditCheckpointRecord.received_at), col(AuditCheckpointRecord.row_id))
        .limit(1)
    ).first()
    if first is not None and first != key:
        raise PermissionDenied(
            f"{WHAT}的签名密钥（{key[:16]}）与 {checkpoint.node} 已登记的密钥（{first[:16]}）不符，拒收"
        )
    held = session.get(AuditCheckpointRecord, (checkpoint.node, checkpoint.row_id))
    if held is not None:
        if held.hash != checkpoint.hash:
            raise PermissionDenied(
                f"{WHAT}与已存的检查点矛盾：{checkpoint.node} 第 {checkpoint.row_id} 条记录的哈希"
                f"已记为 {held.hash[:16]}…，现称 {checkpoint.hash[:16]}…（审计链疑被改写）"
            )
        return
    session.add(
        AuditCheckpointRecord(
            node=checkpoint.node,
            row_id=checkpoint.row_id,
            hash=checkpoint.hash,
            at=checkpoint.at,
            public_key=key,
            signature=checkpoint.signature.hex(),
            received_at=now,
        )
    )


def handler(node_code: str, clock: Clock) -> Handler:
    """The parent's inbox handler of its subtree's checkpoints."""
    decode = Decoder(
        pb.AuditCheckpoint,
        WHAT,
        required=("node", "row_id", "hash", "at", "public_key", "signature"),
        checks=[written_within(node_code, itself=False), from_its_node],
    )

    def apply(session: Session, envelope: Envelope[pb.AuditCheckpoint]) -> None:
        keep(session, envelope.event, now=clock.now())

    return receive(decode, apply)


def held(session: Session, *, node: str) -> list[pb.AuditCheckpoint]:
    """The checkpoints of ``node`` this node holds, oldest row first."""
    rows = session.exec(
        select(AuditCheckpointRecord)
        .where(AuditCheckpointRecord.node == node)
        .order_by(col(AuditCheckpointRecord.row_id))
    ).all()
    return [
        pb.AuditCheckpoint(
            node=r.node,
            row_id=r.row_id,
            hash=r.hash,
            at=r.at,
            public_key=bytes.fromhex(r.public_key),
            signature=bytes.fromhex(r.signature),
        )
        for r in rows
    ]


def publisher(
    *, db: Database, node_code: str, key: Ed25519PrivateKey, clock: Clock, interval_s: float
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Every ``interval_s``, sign the chain's head if it moved and queue it for the parent."""

    async def run() -> None:
        signed = 0
        while True:
            await asyncio.sleep(interval_s)
            try:
                signed = await publish_once(db=db, node_code=node_code, key=key, clock=clock, after=signed)
            except Exception as exc:  # the database away: the next round signs again
                log.warning("audit checkpoint not queued: %s", exc)

    return run


async def publish_once(*, db: Database, node_code: str, key: Ed25519PrivateKey, clock: Clock, after: int) -> int:
    """Sign the chain's head and queue it unless its row is ``after``; the row signed (or ``after``)."""
    head = await db.read(audit.head)
    if head is None or head.row_id == after:
        return after
    checkpoint = sign(key, node=node_code, head=head, at=clock.now())
    # the id names the hash too: a message under a guessed id cannot take the genuine one's place
    # in the parent's inbox (deduplicated by id)
    message_id = f"audit:{node_code}:{head.row_id}:{head.hash[:16]}"
    message = outbox.Message(subject(node_code), message_id, checkpoint.SerializeToString(), {})
    await db.write(lambda s: outbox.enqueue_many(s, messages=[message], now=clock.now()))
    return head.row_id


def anchors(checkpoints: list[pb.AuditCheckpoint]) -> list[audit.Anchor]:
    """The checkpoints as ``audit.examine`` takes them."""
    return [audit.Anchor(c.row_id, c.hash, c.at) for c in checkpoints]
