"""三联 joint cases (一案一专班) over gRPC: a town opens one with its neighbouring towns, each
answers, the task force gets members and tasks per town, everyone adds to the shared timeline,
and the case closes once every accepted participant signed off. 联防 risk alerts: a town raises
one to its neighbours, who acknowledge it.

Reads name the asking center (``viewer``, this center when empty). The county and every
participant not having declined — invited towns included, so they can see what they are asked
to join — may read; any other center gets PERMISSION_DENIED. A town holds copies only of the
joint cases it was invited to, so elsewhere an id is simply NOT_FOUND.
"""

from __future__ import annotations

import datetime as dt
import uuid

import grpc

from fengqiao.divisions import Tier
from fengqiao.errors import IllegalTransition, InvalidArgument, NotFound, PermissionDenied
from fengqiao.grpcutil import grpc_method, page_bounds
from fengqiao.v1 import common_pb2
from fengqiao.v1 import routing_pb2 as pb
from services.routing.base import RoutingBase
from services.routing.joint import rules, store
from services.routing.joint.relay import record_alert, record_joint


def _overdue(case: pb.JointCase, now: dt.datetime) -> pb.JointCase:
    for task in case.tasks:
        task.overdue = not task.done and task.deadline.ToDatetime(tzinfo=dt.UTC) < now
    return case


class JointMethods(RoutingBase):
    """三联 joint cases, relayed to every participant through the county hub."""

    @property
    def _county(self) -> str:
        return self._topology.county.code

    def _joint_event(self, joint_id: str, actor: str, client_request_id: str = "") -> pb.JointEvent:
        """A new event of this center; its id follows from ``client_request_id`` when given."""
        event_id = rules.event_id(self._node, joint_id, client_request_id)
        return self._new_event(pb.JointEvent, actor, event_id=event_id, joint_case_id=joint_id)

    async def _record_joint(self, event: pb.JointEvent) -> pb.JointCase:
        case, now = await self._write(lambda s, now: record_joint(s, event=event, county=self._county, now=now))
        return _overdue(case, now)

    async def _held(self, joint_id: str) -> pb.JointCase:
        case = await self._db.read(lambda s: store.get_joint(s, joint_id=joint_id))
        if case is None:
            raise NotFound(f"本中心没有编号为 {joint_id} 的联合案件")
        return case

    async def _readable(self, joint_id: str, viewer: str) -> pb.JointCase:
        case = await self._held(joint_id)
        viewer = viewer or self._node
        if not rules.may_read(case, viewer, county=self._county):
            raise PermissionDenied(f"{viewer} 不是联合案件 {joint_id} 的参与方，无权查看")
        return _overdue(case, self._clock.now())

    @grpc_method
    async def OpenJointCase(self, request: pb.OpenJointCaseRequest, context: grpc.aio.ServicerContext) -> pb.JointCase:
        spec = self._topology.node(self._node)
        if spec.tier is not Tier.TOWN:
            raise IllegalTransition("只有乡镇综治中心可以发起三联联合案件")
        rules.check_invitations(self._node, list(request.invited), spec.neighbours)
        joint_id = rules.joint_case_id(self._node, request.client_request_id)
        event = self._joint_event(joint_id, request.actor, request.client_request_id)
        event.opened.CopyFrom(
            pb.JointOpened(
                title=request.title,
                category=request.category,
                description=request.description,
                case_id=request.case_id,
                invited=request.invited,
            )
        )
        return await self._record_joint(event)

    @grpc_method
    async def AnswerJointInvitation(
        self, request: pb.AnswerJointInvitationRequest, context: grpc.aio.ServicerContext
    ) -> pb.JointCase:
        await self._held(request.id)
        event = self._joint_event(request.id, request.actor)
        event.answered.CopyFrom(pb.JointAnswer(accept=request.accept, reason=request.reason))
        return await self._record_joint(event)

    @grpc_method
    async def AddJointNote(self, request: pb.AddJointNoteRequest, context: grpc.aio.ServicerContext) -> pb.JointCase:
        await self._held(request.id)
        event = self._joint_event(request.id, request.actor, request.client_request_id)
        event.note = request.text
        return await self._record_joint(event)

    @grpc_method
    async def AddJointMember(
        self, request: pb.AddJointMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.JointCase:
        await self._held(request.id)
        event = self._joint_event(request.id, request.actor, request.client_request_id)
        event.member_added.CopyFrom(request.member)
        event.member_added.node = request.member.node or self._node
        return await self._record_joint(event)

    @grpc_method
    async def AddJointTask(self, request: pb.AddJointTaskRequest, context: grpc.aio.ServicerContext) -> pb.JointCase:
        await self._held(request.id)
        event = self._joint_event(request.id, request.actor, request.client_request_id)
        event.task_added.CopyFrom(pb.JointTaskAdded(node=request.node or self._node, title=request.title))
        if request.HasField("deadline"):
            event.task_added.deadline.CopyFrom(request.deadline)
        return await self._record_joint(event)

    @grpc_method
    async def CompleteJointTask(
        self, request: pb.CompleteJointTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.JointCase:
        await self._held(request.id)
        event = self._joint_event(request.id, request.actor)
        event.task_completed.CopyFrom(pb.JointTaskCompleted(task_id=request.task_id, result=request.result))
        return await self._record_joint(event)

    @grpc_method
    async def SignOffJointCase(
        self, request: pb.SignOffJointCaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.JointCase:
        await self._held(request.id)
        event = self._joint_event(request.id, request.actor)
        event.signed_off = request.comment
        return await self._record_joint(event)

    @grpc_method
    async def GetJointCase(self, request: pb.GetJointCaseRequest, context: grpc.aio.ServicerContext) -> pb.JointCase:
        return await self._readable(request.id, request.viewer)

    @grpc_method
    async def GetJointTimeline(
        self, request: pb.GetJointCaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.JointTimeline:
        await self._readable(request.id, request.viewer)
        serialized = await self._db.read(lambda s: store.timeline(s, joint_id=request.id))
        _case, entries = rules.fold_timeline((pb.JointEvent.FromString(d) for d in serialized), county=self._county)
        return pb.JointTimeline(joint_case_id=request.id, entries=entries, hash=rules.timeline_hash(serialized))

    @grpc_method
    async def ListJointCases(
        self, request: pb.ListJointCasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJointCasesResponse:
        """The joint cases held here that the viewer may read, newest first (a page may come
        out shorter than asked when some held ones are not the viewer's)."""
        offset, size = page_bounds(request.page)
        rows = await self._db.read(
            lambda s: store.list_joint(s, status=int(request.status), offset=offset, limit=size + 1)
        )
        viewer, now = request.viewer or self._node, self._clock.now()
        readable = [_overdue(c, now) for c in rows[:size] if rules.may_read(c, viewer, county=self._county)]
        token = str(offset + size) if len(rows) > size else ""
        return pb.ListJointCasesResponse(joint_cases=readable, page=common_pb2.PageInfo(next_page_token=token))


class RiskAlertMethods(RoutingBase):
    """Raising, acknowledging and listing 联防 risk alerts."""

    def _alert_event(self, alert_id: str, actor: str) -> pb.RiskAlertEvent:
        return self._new_event(pb.RiskAlertEvent, actor, alert_id=alert_id)

    async def _record_alert(self, event: pb.RiskAlertEvent) -> pb.RiskAlert:
        alert, _now = await self._write(lambda s, now: record_alert(s, event=event, now=now))
        return alert

    @grpc_method
    async def RaiseRiskAlert(
        self, request: pb.RaiseRiskAlertRequest, context: grpc.aio.ServicerContext
    ) -> pb.RiskAlert:
        spec = self._topology.node(self._node)
        if spec.tier is not Tier.TOWN:
            raise IllegalTransition("只有乡镇综治中心可以向相邻乡镇发出联防预警")
        to_nodes = list(request.to_nodes) or list(spec.neighbours)
        strangers = [code for code in to_nodes if code not in spec.neighbours]
        if strangers:
            raise InvalidArgument("to_nodes", f"{'、'.join(strangers)} 不是本镇的相邻乡镇")
        event = self._alert_event(str(uuid.uuid4()), request.actor)
        event.raised.CopyFrom(
            pb.RiskAlert(
                from_node=self._node,
                to_nodes=sorted(set(to_nodes)),
                kind=request.kind,
                title=request.title,
                body=request.body,
                level=request.level or "medium",
            )
        )
        return await self._record_alert(event)

    @grpc_method
    async def AcknowledgeRiskAlert(
        self, request: pb.AcknowledgeRiskAlertRequest, context: grpc.aio.ServicerContext
    ) -> pb.RiskAlert:
        current = await self._db.read(lambda s: store.get_alert(s, alert_id=request.id))
        if current is None or self._node not in current.to_nodes:
            raise NotFound(f"本中心没有收到编号为 {request.id} 的联防预警")
        event = self._alert_event(request.id, request.actor)
        event.acknowledged = request.note
        return await self._record_alert(event)

    @grpc_method
    async def ListRiskAlerts(
        self, request: pb.ListRiskAlertsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRiskAlertsResponse:
        if request.direction not in ("", "in", "out"):
            raise InvalidArgument("direction", "direction 须为 in（收到的）、out（发出的）或留空")
        offset, size = page_bounds(request.page)
        node = "" if self._node == self._topology.county.code else self._node
        rows = await self._db.read(
            lambda s: store.list_alerts(s, node=node, direction=request.direction, offset=offset, limit=size + 1)
        )
        token = str(offset + size) if len(rows) > size else ""
        return pb.ListRiskAlertsResponse(alerts=rows[:size], page=common_pb2.PageInfo(next_page_token=token))
