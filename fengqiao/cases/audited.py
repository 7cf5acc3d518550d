"""What the audit trail says of the case tables: each chained case step names the content hash of
its event and of the case row after it (``CaseLog.audit_entry``); ``audited_content`` compares
them with what is stored now, so an edit of a stored event or case is named by ``fengqiao audit
verify`` even when the chain itself holds.

The hashes leave the sealed personal data out (``event_hash``, ``state_hash``): re-sealing it under
a rotated key (``fengqiao/cases/reseal.py``) rewrites those bytes and is no edit, and the sealed
value guards itself — AES-GCM refuses a changed one, and its associated data binds it to its case.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select as sa_select
from sqlmodel import Session

from fengqiao.cases.records import CaseEventRecord, CaseRecord
from fengqiao.security import audit
from fengqiao.v1 import case_pb2 as pb

_CASES = CaseRecord.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEventRecord.__table__  # type: ignore[attr-defined]


def state_hash(case: pb.Case) -> str:
    """The content hash the chain keeps of a case row: its bytes as stored, sealed value left out."""
    if not case.sealed_personal:
        return audit.content_hash(case.SerializeToString())
    bare = pb.Case()
    bare.CopyFrom(case)
    bare.ClearField("sealed_personal")
    return audit.content_hash(bare.SerializeToString())


def event_hash(event: pb.CaseEvent) -> str:
    """The content hash the chain keeps of a case event: its bytes as stored, the sealed value of
    a ``received`` event's case left out."""
    if not (event.HasField("received") and event.received.case.sealed_personal):
        return audit.content_hash(event.SerializeToString())
    bare = pb.CaseEvent()
    bare.CopyFrom(event)
    bare.received.case.ClearField("sealed_personal")
    return audit.content_hash(bare.SerializeToString())


def _stored_event_hash(data: bytes) -> str:
    return event_hash(pb.CaseEvent.FromString(data))


def _stored_state_hash(data: bytes) -> str:
    return state_hash(pb.Case.FromString(data))


def _case_rows(rows: Sequence[audit.AuditRecord]) -> list[tuple[audit.AuditRecord, dict[str, object]]]:
    chosen = []
    for row in rows:
        if row.format >= 2 and row.action.startswith("case.") and row.event_sha256:
            try:
                detail = json.loads(row.detail)
            except ValueError:
                continue  # the chain itself names an edited detail
            if isinstance(detail, dict):
                chosen.append((row, detail))
    return chosen


def audited_content(session: Session, rows: Sequence[audit.AuditRecord]) -> list[audit.Broken]:
    """Where stored case events and case rows no longer match the content hashes ``rows`` chained.

    An event must still be stored with the hash its row names. A case row is compared with the
    newest chained state of the same version: a case changed since by events from other tiers
    (replicated, not chained here) has moved on to a version no row of this node names."""
    chosen = _case_rows(rows)
    if not chosen:
        return []
    connection = session.connection()
    event_ids = [str(detail.get("event", "")) for _, detail in chosen]
    query = sa_select(_EVENTS.c.id, _EVENTS.c.data).where(_EVENTS.c.id.in_(event_ids))
    stored: dict[str, bytes] = {str(event_id): bytes(data) for event_id, data in connection.execute(query)}
    case_ids = list(dict.fromkeys(row.subject for row, _ in chosen))
    cases = {
        case_id: (version, data)
        for case_id, version, data in connection.execute(
            sa_select(_CASES.c.id, _CASES.c.version, _CASES.c.data).where(_CASES.c.id.in_(case_ids))
        )
    }
    problems: list[audit.Broken] = []
    newest: dict[str, tuple[audit.AuditRecord, object]] = {}
    for row, detail in chosen:
        event_id = str(detail.get("event", ""))
        data = stored.get(event_id)
        if data is None:
            problems.append(
                audit.Broken(int(row.id or 0), f"所记的案件事件 {event_id}（案件 {row.subject}）已从案件日志中删除")
            )
        elif _stored_event_hash(data) != row.event_sha256:
            step = f"案件 {row.subject} 第 {detail.get('seq')} 步"
            problems.append(
                audit.Broken(
                    int(row.id or 0), f"案件事件 {event_id}（{step}）的存储内容与审计记录不符（事件数据被改动）"
                )
            )
        newest[row.subject] = (row, detail.get("version"))
    for case_id, (row, version) in newest.items():
        held = cases.get(case_id)
        if held is None:
            problems.append(audit.Broken(int(row.id or 0), f"所记的案件 {case_id} 已被删除"))
        elif held[0] == version and _stored_state_hash(held[1]) != row.state_sha256:
            problems.append(
                audit.Broken(int(row.id or 0), f"案件 {case_id} 的当前记录与审计记录所记的状态不符（案件数据被改动）")
            )
    return problems
