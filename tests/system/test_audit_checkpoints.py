"""Audit checkpoints across real leaf-linked nats-servers: each node signs the head of its audit
chain, its parent verifies and keeps it, a forged one is refused with the reason, and
``fengqiao audit verify --parent`` names a rewrite, a deletion or a truncated tail that the
chain alone no longer shows (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import Session, col, select

from fengqiao.bus import MSG_ID
from fengqiao.db import Database
from fengqiao.models import DeadLetter
from fengqiao.security import audit
from harness.county import LeafCounty, small_county
from services.federation import checkpoints
from services.federation.models import AuditCheckpointRecord
from tests.system.leaf_support import COUNTY, TOWN, VILLAGE, submit
from tests.system.test_county_sync import eventually

SIBLING = "371702101002"


async def held_at(local: LeafCounty, code: str, node: str) -> list[AuditCheckpointRecord]:
    db = local[code].ctx.db  # type: ignore[union-attr]
    return await db.read(
        lambda s: list(
            s.exec(
                select(AuditCheckpointRecord)
                .where(AuditCheckpointRecord.node == node)
                .order_by(col(AuditCheckpointRecord.row_id))
            ).all()
        )
    )


async def dead_letters(local: LeafCounty, code: str) -> list[str]:
    db = local[code].ctx.db  # type: ignore[union-attr]
    rows = await db.read(lambda s: s.exec(select(DeadLetter).where(DeadLetter.consumer == checkpoints.CONSUMER)).all())
    return [r.reason for r in rows]


async def verify_cli(url: str, parent: str) -> subprocess.CompletedProcess[str]:
    """``fengqiao audit verify`` at the village against its town (running in this event loop)."""
    command = [sys.executable, "-m", "host.cli", "audit", "verify", "--database", url]
    command += ["--node", VILLAGE, "--parent", parent]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, check=False)


def rows_of(url: str) -> list[dict[str, object]]:
    db = Database(url)
    try:
        rows = db.transaction(lambda s: s.exec(select(audit.AuditRecord).order_by(col(audit.AuditRecord.id))).all())
    finally:
        db.close()
    return [r.model_dump() for r in rows]


def put_back(url: str, rows: list[dict[str, object]]) -> None:
    """The village's chain as it was before a tampering."""

    def restore(session: Session) -> None:
        session.connection().execute(text("DELETE FROM audit_log"))
        for row in rows:
            session.add(audit.AuditRecord(**row))

    db = Database(url)
    try:
        db.transaction(restore)
    finally:
        db.close()


def tamper(url: str, statement: str, rehash_from: int | None) -> None:
    """Run ``statement`` on the village's audit rows, then re-hash from ``rehash_from`` on."""

    def rewrite(session: Session) -> None:
        session.connection().execute(text(statement))
        if rehash_from is None:
            return
        prev = audit.GENESIS
        for row in session.exec(select(audit.AuditRecord).order_by(col(audit.AuditRecord.id))).all():
            if int(row.id or 0) >= rehash_from:
                row.prev_hash = prev
                row.hash = audit.row_hash(row)
                session.add(row)
            prev = row.hash

    db = Database(url)
    try:
        db.transaction(rewrite)
    finally:
        db.close()


def forged(key: Ed25519PrivateKey, *, node: str, row_id: int, hash_: str, public: bytes | None = None) -> bytes:
    checkpoint = checkpoints.sign(key, node=node, head=audit.Head(row_id, hash_), at=dt.datetime.now(dt.UTC))
    if public is not None:
        checkpoint.public_key = public
    return checkpoint.SerializeToString()


async def test_checkpoints_reach_the_parent_forgeries_are_refused_and_verify_names_tampering(
    tmp_path: Path, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_FEDERATION_AUDIT_CHECKPOINT_INTERVAL_S", "0.3")
    urls = {code: database_url(code) for code in (VILLAGE, SIBLING, TOWN, COUNTY)}
    local = await LeafCounty.create(small_county(towns=1, villages=2), tmp_path / "county", urls.__getitem__)
    try:
        await local.start()
        for _ in range(4):
            await submit(local, VILLAGE)
        village_db = local[VILLAGE].ctx.db  # type: ignore[union-attr]
        head = await village_db.read(audit.head)
        assert head is not None and head.row_id == 4

        async def anchored(code: str) -> bool:
            held = await held_at(local, code, VILLAGE)
            return bool(held) and held[-1].row_id == 4 and held[-1].hash == head.hash

        await eventually(lambda: anchored(TOWN), within_s=30, what="the village's checkpoint kept at the town")
        await eventually(lambda: anchored(COUNTY), within_s=30, what="the village's checkpoint kept at the county")
        genuine = await held_at(local, TOWN, VILLAGE)
        town = local[TOWN].grpc_address

        # Forgeries, each on the village's own (permitted) subject: as its sibling, under another
        # key, and with the village's key named but another's signature.
        js = local[VILLAGE].ctx.js  # type: ignore[union-attr]
        other = Ed25519PrivateKey.generate()
        village_key = genuine[0].public_key
        forgeries = {
            "as-sibling": forged(other, node=SIBLING, row_id=9, hash_="a" * 64),
            "other-key": forged(other, node=VILLAGE, row_id=9, hash_="b" * 64),
            "bad-signature": forged(other, node=VILLAGE, row_id=10, hash_="c" * 64, public=bytes.fromhex(village_key)),
        }
        for name, data in forgeries.items():
            await js.publish(checkpoints.subject(VILLAGE), data, headers={MSG_ID: f"forged-{name}"})

        async def refused() -> bool:
            return len(await dead_letters(local, TOWN)) == 3

        await eventually(refused, within_s=30, what="three forged checkpoints refused at the town")
        reasons = sorted(await dead_letters(local, TOWN))
        assert any(f"伪造的审计检查点：声称来自 {SIBLING}，实际由 {VILLAGE} 发出" in r for r in reasons), reasons
        assert any(f"与 {VILLAGE} 已登记的密钥（{village_key[:16]}）不符，拒收" in r for r in reasons), reasons
        assert any(f"审计检查点签名无效：不是 {VILLAGE} 的密钥所签" in r for r in reasons), reasons
        assert [(c.row_id, c.hash) for c in await held_at(local, TOWN, VILLAGE)] == [
            (c.row_id, c.hash) for c in genuine
        ]
        assert await held_at(local, TOWN, SIBLING) == []  # the sibling wrote nothing: nothing of it is held

        await local.stop(VILLAGE)  # the village box, taken over by someone who can write its database
        url = urls[VILLAGE]
        result = await verify_cli(url, town)
        assert result.returncode == 0 and "与上级所存的" in result.stdout, result.stdout + result.stderr
        before = rows_of(url)
        ids = [c.row_id for c in genuine]  # the checkpoints the town holds (one per head it was sent)
        after_1 = min(i for i in ids if i >= 2)  # the first one a change of row 2 or 3 must contradict
        good = max([i for i in ids if i < 2], default=0)
        rewritten = f"第 {after_1} 条记录 —— "
        rewritten_range = f"不符：第 {good + 1}–{after_1} 条记录之间有记录被改写或删除后重新计算了哈希"
        deleted = rewritten_range if after_1 > 3 else "所记的记录已被删除"
        after_2 = min(i for i in ids if i > 2)
        cut = f"第 {after_2} 条记录 —— 上级所存检查点（第 {after_2} 条"
        cases = [
            ("UPDATE audit_log SET actor = '他人' WHERE id = 2", 2, (rewritten, rewritten_range)),
            ("DELETE FROM audit_log WHERE id IN (2, 3)", 4, (rewritten, deleted)),
            (
                "DELETE FROM audit_log WHERE id > 2",
                None,
                (cut, f"被截断：本地链只到第 2 条，第 3–{after_2} 条已不存在"),
            ),
        ]
        for statement, rehash_from, named in cases:
            tamper(url, statement, rehash_from)
            result = await verify_cli(url, town)
            assert result.returncode == 1, result.stdout + result.stderr
            assert all(n in result.stdout for n in named), (named, result.stdout)
            put_back(url, before)
        assert (await verify_cli(url, town)).returncode == 0
    finally:
        await local.close()
