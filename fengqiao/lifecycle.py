"""The case as the fold of its events (pure: no I/O).

``apply`` takes the current case (or ``None`` before the first event) and one event and
returns the new case, or raises ``IllegalTransition`` and leaves the input untouched. Every
node — the holder writing, and the tiers above replicating — folds with this one function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from fengqiao.errors import IllegalTransition
from fengqiao.v1 import case_pb2 as pb

Applier = Callable[[pb.Case | None, pb.CaseEvent], pb.Case]

STATUS_LABELS = {
    pb.CASE_STATUS_RECEIVED: "已受理",
    pb.CASE_STATUS_TRIAGED: "已研判",
    pb.CASE_STATUS_ASSIGNED: "已交办",
    pb.CASE_STATUS_ACKNOWLEDGED: "已签收",
    pb.CASE_STATUS_IN_PROGRESS: "处置中",
    pb.CASE_STATUS_FEEDBACK: "已反馈",
    pb.CASE_STATUS_REVIEWED: "已审核",
    pb.CASE_STATUS_CLOSED: "已办结",
    pb.CASE_STATUS_FOLLOWED_UP: "已回访",
    pb.CASE_STATUS_ARCHIVED: "已归档",
    pb.CASE_STATUS_ESCALATING: "上报中",
}
CLOSED_STATUSES = frozenset({pb.CASE_STATUS_CLOSED, pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED})


def event_type(event: pb.CaseEvent) -> str:
    """The event's type: the name of its payload (received, triaged, ...)."""
    kind = event.WhichOneof("payload")
    if kind is None:
        raise IllegalTransition("事件缺少内容（payload），无法处理")
    return kind


def event_time(event: pb.CaseEvent) -> dt.datetime:
    return event.at.ToDatetime(tzinfo=dt.UTC)


def _received(case: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
    if case is not None:
        raise IllegalTransition(f"案件 {case.receipt_no} 已受理，不能重复受理")
    new = pb.Case()
    new.CopyFrom(event.received.case)
    new.id = event.case_id
    new.holder_node = event.node
    new.status = pb.CASE_STATUS_RECEIVED
    new.received_at.CopyFrom(event.at)
    return new


_APPLIERS: dict[str, Applier] = {
    "received": _received,
}


def apply(case: pb.Case | None, event: pb.CaseEvent) -> pb.Case:
    """The case after ``event``; refuses events out of sequence or not allowed now."""
    expected = 1 if case is None else case.version + 1
    if event.seq != expected:
        raise IllegalTransition(f"事件序号 {event.seq} 不连续（应为 {expected}）")
    if case is not None and event.case_id != case.id:
        raise IllegalTransition("事件不属于该案件")
    kind = event_type(event)
    applier = _APPLIERS.get(kind)
    if applier is None:
        raise IllegalTransition(f"未知的事件类型：{kind}")
    new = applier(case, event)
    new.version = event.seq
    new.updated_at.CopyFrom(event.at)
    return new


def fold(events: Iterable[pb.CaseEvent]) -> pb.Case | None:
    """The case from its whole log, in sequence order."""
    case: pb.Case | None = None
    for event in sorted(events, key=lambda e: e.seq):
        case = apply(case, event)
    return case
