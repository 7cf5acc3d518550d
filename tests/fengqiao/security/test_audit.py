"""The audit trail: every change a node makes is chained; editing, removing or inserting one row
makes ``fengqiao audit verify`` fail and name it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlmodel import select

from fengqiao import migrations
from fengqiao.db import Database
from fengqiao.grpcutil import channel
from fengqiao.security import audit
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc
from harness.county import LocalCounty, submit_request

VILLAGE = "371702101001"
T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def entries(n: int) -> list[audit.Entry]:
    return [
        audit.Entry(T0 + dt.timedelta(seconds=i), VILLAGE, f"值班员{i}", "case.triaged", f"case-{i}", {"seq": i})
        for i in range(n)
    ]


@pytest.fixture
def chained(database_url: Callable[[str], str]) -> str:
    """A database holding a chain of 20 entries, written in three transactions."""
    url = database_url("audit")
    db = Database(url)
    try:
        migrations.upgrade(db.url)
        written = entries(20)
        for part in (written[:5], written[5:6], written[6:]):
            db.transaction(lambda s, part=part: audit.record(s, part))
    finally:
        db.close()
    return url


def verify_cli(url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "host.cli", "audit", "verify", "--database", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def run_sql(url: str, statement: str) -> None:
    db = Database(url)
    try:
        db.transaction(lambda s: s.connection().execute(text(statement)))
    finally:
        db.close()


def test_an_untouched_chain_verifies(chained: str) -> None:
    result = verify_cli(chained)
    assert result.returncode == 0, result.stderr
    assert "审计链完整：共 20 条记录" in result.stdout


@pytest.mark.parametrize(
    ("tamper", "broken_at", "why"),
    [
        ("UPDATE audit_log SET actor = '他人' WHERE id = 7", 7, "被改动"),
        ("UPDATE audit_log SET detail = replace(detail, '12', '99') WHERE id = 13", 13, "被改动"),
        ("DELETE FROM audit_log WHERE id = 11", 12, "不衔接"),
        ("UPDATE audit_log SET hash = 'f' || substr(hash, 2) WHERE id = 4", 4, "被改动"),
    ],
)
def test_editing_or_removing_one_row_fails_verification_and_names_it(
    chained: str, tamper: str, broken_at: int, why: str
) -> None:
    run_sql(chained, tamper)
    result = verify_cli(chained)
    assert result.returncode == 1
    assert f"第 {broken_at} 条记录" in result.stdout and why in result.stdout, result.stdout


def test_a_row_forged_with_a_fresh_hash_still_breaks_the_next_link(chained: str) -> None:
    """Recomputing one row's hash after editing it does not help: the next row no longer links."""
    db = Database(chained)
    try:
        row = db.transaction(lambda s: s.exec(select(audit.AuditRecord).where(audit.AuditRecord.id == 9)).one())
        row.actor = "他人"
        forged = audit.row_hash(row)
        db.transaction(
            lambda s: s.connection().execute(
                text("UPDATE audit_log SET actor = '他人', hash = :h WHERE id = 9"), {"h": forged}
            )
        )
        count, broken = db.transaction(audit.verify)
    finally:
        db.close()
    assert count == 9 and broken is not None and broken.row_id == 10


async def test_every_step_of_a_case_is_in_the_villages_audit_trail(village: LocalCounty) -> None:
    async with channel(village[VILLAGE].grpc_address) as ch:
        api = intake_pb2_grpc.IntakeStub(ch)
        case = (await api.SubmitCase(submit_request(VILLAGE))).case
        step = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
        await api.Triage(intake_pb2.TriageRequest(case_id=case.id, actor="值班员刘洋", step=step))
    db = village[VILLAGE].ctx.db  # type: ignore[union-attr]
    rows = await db.read(lambda s: s.exec(select(audit.AuditRecord).where(audit.AuditRecord.subject == case.id)).all())
    assert [(r.action, r.actor) for r in rows] == [("case.received", "网格员王芳"), ("case.triaged", "值班员刘洋")]
    count, broken = await db.read(audit.verify)
    assert broken is None and count >= 2


async def test_reading_a_cases_personal_data_in_full_is_audited(village: LocalCounty) -> None:
    import httpx

    from harness.county import ADMIN_PASSWORD

    async with channel(village[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
    base = f"http://127.0.0.1:{village[VILLAGE].http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        detail = await client.get(f"/api/v1/cases/{case.id}", headers=headers)
        await client.get(f"/api/v1/cases/{case.id}/events", headers=headers)
    assert detail.json()["parties"][0]["id_number"] == "37170219850312004X"
    db = village[VILLAGE].ctx.db  # type: ignore[union-attr]
    reads = await db.read(
        lambda s: s.exec(select(audit.AuditRecord).where(audit.AuditRecord.action == "pii.read")).all()
    )
    assert [(r.actor, r.subject, r.detail) for r in reads] == [
        ("admin", case.id, '{"view":"case"}'),
        ("admin", case.id, '{"view":"timeline"}'),
    ]
