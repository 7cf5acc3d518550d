"""The audit trail: every change a node makes is chained; editing, removing or inserting one row
makes ``fengqiao audit verify`` fail and name it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from fengqiao import migrations
from fengqiao.cases.records import CaseEventRecord, CaseRecord
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


def rehash_from(url: str, first: int) -> None:
    """What someone who can write the database does after an edit: re-hash every row from
    ``first`` on, so that every link holds again."""
    db = Database(url)
    try:

        def rewrite(session: Session) -> None:
            rows = session.exec(select(audit.AuditRecord).order_by(audit.AuditRecord.id)).all()  # type: ignore[arg-type]
            prev = audit.GENESIS
            for row in rows:
                if int(row.id or 0) >= first:
                    row.prev_hash = prev
                    row.hash = audit.row_hash(row)
                    session.add(row)
                prev = row.hash

        db.transaction(rewrite)
    finally:
        db.close()


def anchors_of(url: str, *row_ids: int) -> list[audit.Anchor]:
    """Checkpoints of the chain as it is now at ``row_ids``, as a parent would hold them."""
    db = Database(url)
    try:
        rows = db.transaction(
            lambda s: s.exec(select(audit.AuditRecord).where(col(audit.AuditRecord.id).in_(row_ids))).all()
        )
    finally:
        db.close()
    return [audit.Anchor(int(r.id or 0), r.hash, f"2026-11-22T08:0{i}:00+00:00") for i, r in enumerate(rows)]


def examine(url: str, anchors: list[audit.Anchor]) -> audit.Verdict:
    db = Database(url)
    try:
        return db.transaction(lambda s: audit.examine(s, anchors=anchors))
    finally:
        db.close()


def test_a_chain_that_matches_the_parents_checkpoints_verifies(chained: str) -> None:
    verdict = examine(chained, anchors_of(chained, 5, 12, 20))
    assert verdict.ok and verdict.count == 20


@pytest.mark.parametrize(
    ("tamper", "rehash_at", "named"),
    [
        # one row rewritten, every row after it re-hashed: the links hold, the checkpoint of row 12 does not
        (
            "UPDATE audit_log SET actor = '他人' WHERE id = 7",
            7,
            "与上级所存检查点（第 12 条，2026-11-22T08:01:00+00:00）不符：第 6–12 条",
        ),
        # two rows deleted in the middle, the rest re-hashed
        (
            "DELETE FROM audit_log WHERE id IN (8, 9)",
            8,
            "与上级所存检查点（第 12 条，2026-11-22T08:01:00+00:00）不符：第 6–12 条",
        ),
        # the tail cut off before the newest checkpoint: nothing left to break a link
        ("DELETE FROM audit_log WHERE id > 15", None, "之前的记录被截断：本地链只到第 15 条，第 16–20 条已不存在"),
    ],
)
def test_rewriting_deleting_or_truncating_before_a_checkpoint_is_named(
    chained: str, tamper: str, rehash_at: int | None, named: str
) -> None:
    anchors = anchors_of(chained, 5, 12, 20)
    run_sql(chained, tamper)
    if rehash_at is not None:
        rehash_from(chained, rehash_at)
    db = Database(chained)
    try:
        _, broken = db.transaction(audit.verify)
    finally:
        db.close()
    assert broken is None  # the chain alone holds: only the checkpoints tell
    verdict = examine(chained, anchors)
    assert len(verdict.problems) == 1 and named in verdict.problems[0].reason, verdict.problems


def test_a_checkpoint_whose_row_is_gone_but_the_chain_goes_on_is_named(chained: str) -> None:
    anchors = anchors_of(chained, 12)
    run_sql(chained, "DELETE FROM audit_log WHERE id = 12")
    rehash_from(chained, 13)
    (problem,) = examine(chained, anchors).problems
    assert problem.row_id == 12 and "所记的记录已被删除" in problem.reason


def test_old_rows_keep_their_formula_and_new_rows_chain_content(chained: str) -> None:
    """A row of the previous release (format 1) verifies beside rows of format 2."""
    run_sql(chained, "DELETE FROM audit_log")
    db = Database(chained)
    try:
        old = audit.digest(audit.GENESIS, "2026-01-01T00:00:00+00:00", VILLAGE, "管理员", "login", "admin", "{}")
        db.transaction(
            lambda s: s.connection().execute(
                text(
                    "INSERT INTO audit_log (id, at, node, actor, action, subject, detail, prev_hash, hash) "
                    "VALUES (1, '2026-01-01T00:00:00+00:00', :n, '管理员', 'login', 'admin', '{}', :g, :h)"
                ),
                {"n": VILLAGE, "g": audit.GENESIS, "h": old},
            )
        )
        db.transaction(lambda s: audit.record(s, entries(2)))
        rows = db.transaction(lambda s: s.exec(select(audit.AuditRecord).order_by(audit.AuditRecord.id)).all())  # type: ignore[arg-type]
        assert [r.format for r in rows] == [1, 2, 2]
        assert db.transaction(audit.verify) == (3, None)
    finally:
        db.close()


async def test_editing_a_stored_event_or_case_is_named(village: LocalCounty) -> None:
    """The chain holds the content hashes of each event and of the case after it: an edit of the
    stored data, however the audit rows are left, is named by ``fengqiao audit verify``."""
    async with channel(village[VILLAGE].grpc_address) as ch:
        api = intake_pb2_grpc.IntakeStub(ch)
        case = (await api.SubmitCase(submit_request(VILLAGE))).case
        step = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
        await api.Triage(intake_pb2.TriageRequest(case_id=case.id, actor="值班员刘洋", step=step))
    node = village[VILLAGE]
    db = node.ctx.db  # type: ignore[union-attr]
    url = db.url
    assert verify_cli(url).returncode == 0

    received = await db.read(
        lambda s: s.exec(
            select(CaseEventRecord).where(CaseEventRecord.case_id == case.id, CaseEventRecord.seq == 1)
        ).one()
    )
    event = pb.CaseEvent.FromString(received.data)
    event.actor = "他人"
    await db.run(
        lambda s: s.connection().execute(
            text("UPDATE case_event SET data = :d WHERE id = :i"), {"d": event.SerializeToString(), "i": event.id}
        )
    )
    result = verify_cli(url)
    assert result.returncode == 1
    assert f"案件事件 {event.id}（案件 {case.id} 第 1 步）的存储内容与审计记录不符" in result.stdout, result.stdout

    stored = await db.read(lambda s: s.exec(select(CaseRecord).where(CaseRecord.id == case.id)).one())
    edited = pb.Case.FromString(stored.data)
    edited.description = "改写过的诉求"
    await db.run(
        lambda s: s.connection().execute(
            text("UPDATE case_record SET data = :d WHERE id = :i"), {"d": edited.SerializeToString(), "i": case.id}
        )
    )
    result = verify_cli(url)
    assert f"案件 {case.id} 的当前记录与审计记录所记的状态不符" in result.stdout, result.stdout

    await db.run(lambda s: s.connection().execute(text("DELETE FROM case_event WHERE id = :i"), {"i": event.id}))
    result = verify_cli(url)
    assert f"所记的案件事件 {event.id}（案件 {case.id}）已从案件日志中删除" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--parent", "127.0.0.1:9"], "对照上级检查点时须用 --node 指定本中心的行政区划代码"),
        (
            ["--parent", "127.0.0.1:9", "--node", "3717"],
            "无法对照上级检查点：字段 --node：“3717”不是有效的行政区划代码",
        ),
        (["--parent", "127.0.0.1:9", "--node", VILLAGE], "无法从上级 127.0.0.1:9 读取检查点："),
    ],
)
def test_verify_says_why_it_cannot_check_against_the_parent(chained: str, extra: list[str], said: str) -> None:
    command = [sys.executable, "-m", "host.cli", "audit", "verify", "--database", chained, *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 2 and said in result.stderr, result.stderr
