"""三联 joint cases and 联防 risk alerts (pure): the fold of a joint case's shared timeline in its
one deterministic order, the timeline hash, and the life of a risk alert.

Every copy of a joint case (each participant's and the county's) holds the same events and folds
them sorted by ``order_key`` — (lamport, node, id) — so every copy reaches the same state. An
event that is illegal at its place in that order (say a note that sorts after the closing
sign-off of a concurrent writer) stays in the timeline, marked as not applied, on every copy.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence

from fengqiao.divisions import Tier, tier_of
from fengqiao.errors import FengqiaoError, IllegalTransition, InvalidArgument
from fengqiao.v1 import routing_pb2 as pb

INVITED = pb.JOINT_PARTICIPANT_STATUS_INVITED
ACCEPTED = pb.JOINT_PARTICIPANT_STATUS_ACCEPTED
DECLINED = pb.JOINT_PARTICIPANT_STATUS_DECLINED
ALERT_KINDS = {
    "boundary_dispute": "边界矛盾苗头",
    "wanted_vehicle": "协查车辆",
    "missing_person": "走失人员",
    "other": "其它",
}
ALERT_LEVELS = ("low", "medium", "high")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,80}$")
_JOINT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:fengqiao:routing:joint-case")
_EVENT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:fengqiao:routing:joint-event")


def joint_case_id(lead: str, client_request_id: str) -> str:
    """The id of the joint case a town opens for a client request id (a new one when empty):
    the same for a retry, so a retried opening finds the first one."""
    if not client_request_id:
        return str(uuid.uuid4())
    if not _REQUEST_ID.match(client_request_id):
        raise InvalidArgument("client_request_id", "请求编号须为 8–80 位字母、数字或 ._:-（可不填）")
    return str(uuid.uuid5(_JOINT_IDS, f"{lead}/{client_request_id}"))


def event_id(node: str, joint_id: str, client_request_id: str) -> str:
    """The id of the event a center adds to a joint case for a client request id (a new one
    when empty): the same for a retry, so the retry finds the first one's event."""
    if not client_request_id:
        return str(uuid.uuid4())
    if not _REQUEST_ID.match(client_request_id):
        raise InvalidArgument("client_request_id", "请求编号须为 8–80 位字母、数字或 ._:-（可不填）")
    return str(uuid.uuid5(_EVENT_IDS, f"{node}/{joint_id}/{client_request_id}"))


def order_key(event: pb.JointEvent) -> tuple[int, str, str]:
    """The one order of a joint case's timeline, the same at every copy."""
    return (event.lamport, event.node, event.id)


def timeline_hash(serialized: Iterable[bytes]) -> str:
    """sha256 (hex) over the ordered serialized events, each prefixed by its length."""
    digest = hashlib.sha256()
    for data in serialized:
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.hexdigest()


def participant(case: pb.JointCase, node: str) -> pb.JointParticipant | None:
    return next((p for p in case.participants if p.node == node), None)


def may_read(case: pb.JointCase, viewer: str, *, county: str) -> bool:
    """The county and every participant not having declined (invited ones included, so they can
    decide) may read a joint case; nobody else."""
    found = participant(case, viewer)
    return viewer == county or (found is not None and found.status != DECLINED)


def recipients(case: pb.JointCase, *, sender: str) -> list[str]:
    """The participants the hub relays an event of ``sender`` to: every one not having declined."""
    return [p.node for p in case.participants if p.status != DECLINED and p.node != sender]


def check_invitations(lead: str, invited: Sequence[str], neighbours: Sequence[str]) -> None:
    """A town invites only its neighbouring towns (topology), each once, never itself."""
    if tier_of(lead) is not Tier.TOWN:
        raise IllegalTransition("只有乡镇综治中心可以发起三联联合案件")
    if not invited:
        raise InvalidArgument("invited", "至少邀请一个相邻乡镇")
    if len(set(invited)) != len(invited) or lead in invited:
        raise InvalidArgument("invited", "邀请的乡镇不能重复，也不能包含本镇")
    strangers = [code for code in invited if code not in neighbours]
    if strangers:
        raise InvalidArgument("invited", f"{'、'.join(strangers)} 不是本镇的相邻乡镇")


def _opened(event: pb.JointEvent) -> pb.JointCase:
    opened = event.opened
    if not opened.title.strip():
        raise InvalidArgument("title", "联合案件标题不能为空")
    case = pb.JointCase(
        id=event.joint_case_id,
        lead_node=event.node,
        title=opened.title,
        category=opened.category,
        description=opened.description,
        case_id=opened.case_id,
        status=pb.JOINT_CASE_STATUS_OPEN,
        opened_by=event.actor,
    )
    case.opened_at.CopyFrom(event.at)
    case.participants.append(pb.JointParticipant(node=event.node, status=ACCEPTED))
    case.participants.extend(pb.JointParticipant(node=code, status=INVITED) for code in opened.invited)
    return case


def _accepted(case: pb.JointCase, node: str, county: str, *, county_may: bool = False) -> None:
    if county_may and node == county:
        return
    found = participant(case, node)
    if found is None or found.status != ACCEPTED:
        raise IllegalTransition(f"{node} 不是联合案件 {case.id} 已接受邀请的参与方")


def _answer(case: pb.JointCase, event: pb.JointEvent) -> None:
    found = participant(case, event.node)
    if found is None or found.status != INVITED:
        raise IllegalTransition(f"{event.node} 没有待答复的联合案件邀请")
    if not event.answered.accept and not event.answered.reason.strip():
        raise InvalidArgument("reason", "拒绝邀请须说明理由")
    found.status = ACCEPTED if event.answered.accept else DECLINED
    found.reason = event.answered.reason
    if all(p.status == DECLINED for p in case.participants if p.node != case.lead_node):
        case.status = pb.JOINT_CASE_STATUS_DECLINED


def _task_added(case: pb.JointCase, event: pb.JointEvent, county: str) -> None:
    added = event.task_added
    _accepted(case, event.node, county, county_may=True)
    _accepted(case, added.node, county)
    if event.node not in (county, case.lead_node, added.node):
        raise IllegalTransition("只有牵头乡镇、县级中心或承担任务的乡镇可以分派任务")
    if not added.title.strip():
        raise InvalidArgument("title", "任务内容不能为空")
    if not added.HasField("deadline") or added.deadline.ToDatetime() <= event.at.ToDatetime():
        raise InvalidArgument("deadline", "任务须有晚于当前时间的办理时限")
    task = pb.JointTask(id=f"T{len(case.tasks) + 1}", node=added.node, title=added.title)
    task.deadline.CopyFrom(added.deadline)
    case.tasks.append(task)


def _task_completed(case: pb.JointCase, event: pb.JointEvent) -> None:
    done = event.task_completed
    task = next((t for t in case.tasks if t.id == done.task_id), None)
    if task is None:
        raise IllegalTransition(f"联合案件没有编号为 {done.task_id} 的任务")
    if task.node != event.node:
        raise IllegalTransition(f"任务 {task.id} 由 {task.node} 承担，只有该乡镇可以完成")
    if task.done:
        raise IllegalTransition(f"任务 {task.id} 已完成")
    if not done.result.strip():
        raise InvalidArgument("result", "完成任务须填写办理结果")
    task.done, task.result = True, done.result
    task.done_at.CopyFrom(event.at)


def _signed_off(case: pb.JointCase, event: pb.JointEvent, county: str) -> None:
    _accepted(case, event.node, county)
    found = participant(case, event.node)
    assert found is not None
    if found.signed_off:
        raise IllegalTransition(f"{event.node} 已签字确认")
    if any(p.status == INVITED for p in case.participants):
        raise IllegalTransition("尚有乡镇未答复邀请，不能签字办结")
    open_tasks = [t.id for t in case.tasks if t.node == event.node and not t.done]
    if open_tasks:
        raise IllegalTransition(f"本镇承担的任务 {'、'.join(open_tasks)} 尚未完成，不能签字")
    found.signed_off, found.signed_off_by = True, event.actor
    found.signed_off_at.CopyFrom(event.at)
    if all(p.signed_off for p in case.participants if p.status == ACCEPTED):
        case.status = pb.JOINT_CASE_STATUS_CLOSED
        case.closed_at.CopyFrom(event.at)


def apply_joint(current: pb.JointCase | None, event: pb.JointEvent, *, county: str) -> pb.JointCase:
    """The joint case after one event of its timeline; raises and leaves ``current`` untouched
    when the event is illegal there."""
    kind = event.WhichOneof("payload")
    if not event.actor.strip():
        raise InvalidArgument("actor", "操作人不能为空")
    if kind == "opened":
        if current is not None:
            raise IllegalTransition(f"联合案件 {event.joint_case_id} 已发起")
        return _opened(event)
    if current is None:
        raise IllegalTransition(f"联合案件 {event.joint_case_id} 不存在")
    if current.status != pb.JOINT_CASE_STATUS_OPEN:
        raise IllegalTransition("联合案件已办结或未成立，不能再办理")
    case = pb.JointCase()
    case.CopyFrom(current)
    if kind == "answered":
        _answer(case, event)
    elif kind == "note":
        _accepted(case, event.node, county, county_may=True)
        if not event.note.strip():
            raise InvalidArgument("text", "工作记录不能为空")
    elif kind == "member_added":
        _accepted(case, event.node, county)
        member = event.member_added
        if member.node != event.node:
            raise IllegalTransition("专班成员由所在乡镇自行添加")
        if not member.name.strip() or not member.unit.strip():
            raise InvalidArgument("member", "专班成员须有姓名和所在单位")
        case.members.append(member)
    elif kind == "task_added":
        _task_added(case, event, county)
    elif kind == "task_completed":
        _task_completed(case, event)
    elif kind == "signed_off":
        _signed_off(case, event, county)
    else:
        raise InvalidArgument("payload", "联合案件事件缺少内容")
    return case


def fold_timeline(
    events: Iterable[pb.JointEvent], *, county: str
) -> tuple[pb.JointCase | None, list[pb.JointTimelineEntry]]:
    """The joint case from its whole timeline, and the timeline in order with what applied."""
    case: pb.JointCase | None = None
    entries = []
    for event in sorted(events, key=order_key):
        entry = pb.JointTimelineEntry(event=event, applied=True)
        try:
            case = apply_joint(case, event, county=county)
        except FengqiaoError as exc:
            entry.applied, entry.note = False, exc.message
        entries.append(entry)
    return case, entries


def apply_alert(current: pb.RiskAlert | None, event: pb.RiskAlertEvent) -> pb.RiskAlert:
    """A risk alert after one of its events: raised by a town, acknowledged by each addressee."""
    kind = event.WhichOneof("payload")
    if kind == "raised":
        raised = event.raised
        if current is not None:
            raise IllegalTransition(f"预警 {event.alert_id} 已发出")
        if raised.from_node != event.node:
            raise IllegalTransition("预警只能以本中心名义发出")
        if raised.kind not in ALERT_KINDS:
            raise InvalidArgument("kind", f"预警类型须为 {'、'.join(ALERT_KINDS)} 之一")
        if raised.level not in ALERT_LEVELS:
            raise InvalidArgument("level", "预警等级须为 low、medium、high 之一")
        if not raised.title.strip():
            raise InvalidArgument("title", "预警标题不能为空")
        if not raised.to_nodes:
            raise InvalidArgument("to_nodes", "没有可以通报的相邻乡镇")
        alert = pb.RiskAlert()
        alert.CopyFrom(raised)
        alert.id, alert.raised_by = event.alert_id, event.actor
        alert.raised_at.CopyFrom(event.at)
        del alert.acks[:]
        alert.fully_acknowledged = False
        return alert
    if kind != "acknowledged":
        raise InvalidArgument("payload", "预警事件缺少内容")
    if current is None:
        raise IllegalTransition(f"预警 {event.alert_id} 不存在")
    if event.node not in current.to_nodes:
        raise IllegalTransition(f"预警 {current.id} 不是发给 {event.node} 的")
    if any(ack.node == event.node for ack in current.acks):
        raise IllegalTransition(f"{event.node} 已确认收到该预警")
    alert = pb.RiskAlert()
    alert.CopyFrom(current)
    ack = alert.acks.add(node=event.node, actor=event.actor, note=event.acknowledged)
    ack.at.CopyFrom(event.at)
    alert.fully_acknowledged = {a.node for a in alert.acks} == set(alert.to_nodes)
    return alert
