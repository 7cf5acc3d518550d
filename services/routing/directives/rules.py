"""Directive rules (pure): the life of a directive, issued down and answered up."""

from __future__ import annotations

from fengqiao import writers
from fengqiao.divisions import is_within
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.v1 import routing_pb2

DIRECTIVE_KINDS = {"directive": "工作指令", "assignment": "交办事项"}


_DIRECTIVE_STATUS = {
    routing_pb2.DIRECTIVE_STATUS_ISSUED: "已下达",
    routing_pb2.DIRECTIVE_STATUS_ACKNOWLEDGED: "已签收",
    routing_pb2.DIRECTIVE_STATUS_COMPLETED: "已办结",
}


def apply_directive(current: routing_pb2.Directive | None, event: routing_pb2.DirectiveEvent) -> routing_pb2.Directive:
    """A directive after one of its events (issued going down; 签收 or 办结 coming back up).

    The sender issues; only the addressee acknowledges and completes, in that order.
    Raises ``IllegalTransition`` or ``InvalidArgument`` and leaves ``current`` untouched.
    """
    kind = event.WhichOneof("payload")
    if kind == "issued":
        if current is not None:
            raise IllegalTransition(f"指令 {event.directive_id} 已下达，不能重复下达")
        issued = event.issued
        if issued.kind not in DIRECTIVE_KINDS:
            raise InvalidArgument("kind", f"指令类型须为 {'、'.join(DIRECTIVE_KINDS)} 之一")
        if not issued.title.strip():
            raise InvalidArgument("title", "指令标题不能为空")
        if issued.from_node != event.node or not is_within(issued.to_node, issued.from_node):
            raise IllegalTransition(f"{event.node} 只能向本级以下的中心下达指令")
        if issued.to_node == issued.from_node:
            raise IllegalTransition("不能向本中心下达指令")
        if issued.HasField("deadline") and issued.deadline.ToDatetime() <= event.at.ToDatetime():
            raise InvalidArgument("deadline", "指令时限必须晚于下达时间")
        new = routing_pb2.Directive()
        new.CopyFrom(issued)
        new.id = event.directive_id
        new.issued_at.CopyFrom(event.at)
        new.issued_by = event.actor
        new.status = routing_pb2.DIRECTIVE_STATUS_ISSUED
        return new
    if current is None:
        raise IllegalTransition(f"指令 {event.directive_id} 不存在")
    if event.node not in writers.directive_owners(current)[writers.Writer.RECEIVER]:
        raise IllegalTransition(f"只有受令中心 {current.to_node} 可以签收或办结该指令")
    new = routing_pb2.Directive()
    new.CopyFrom(current)
    label = _DIRECTIVE_STATUS.get(current.status, "未知")
    if kind == "acknowledged":
        if current.status != routing_pb2.DIRECTIVE_STATUS_ISSUED:
            raise IllegalTransition(f"指令当前为“{label}”，不能签收")
        new.status = routing_pb2.DIRECTIVE_STATUS_ACKNOWLEDGED
        new.acknowledged_at.CopyFrom(event.at)
        new.acknowledged_by = event.actor
        return new
    if kind == "completed":
        if current.status != routing_pb2.DIRECTIVE_STATUS_ACKNOWLEDGED:
            raise IllegalTransition(f"指令当前为“{label}”，须先签收才能办结")
        if not event.completed.strip():
            raise InvalidArgument("text", "办结须填写办理结果")
        new.status = routing_pb2.DIRECTIVE_STATUS_COMPLETED
        new.completed_at.CopyFrom(event.at)
        new.result = event.completed
        return new
    raise InvalidArgument("payload", "指令事件缺少内容")
