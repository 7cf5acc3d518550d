"""Dispatch to departments: 交办 by category, 中心吹哨、部门报到, and 攻坚 task forces."""

from __future__ import annotations

import grpc

from fengqiao.errors import InvalidArgument
from fengqiao.grpcutil import grpc_method
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import routing_pb2
from services.routing.base import RoutingBase
from services.routing.departments import Department


def _info(department: Department) -> routing_pb2.DepartmentInfo:
    return routing_pb2.DepartmentInfo(
        name=department.name,
        presence=department.presence.key,
        presence_label=department.presence.label,
        report_minutes=department.presence.report_minutes,
    )


class DispatchMethods(RoutingBase):
    """The center's departments at work on the cases it holds."""

    @grpc_method
    async def ListDepartments(
        self, request: routing_pb2.ListDepartmentsRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.ListDepartmentsResponse:
        book = self._departments.current()
        found = book.concerned(self._node, request.category) if request.category else book.at(self._node)
        return routing_pb2.ListDepartmentsResponse(departments=[_info(d) for d in found])

    @grpc_method
    async def Dispatch(self, request: routing_pb2.DispatchRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        book = self._departments.current()
        if request.department:
            book.department(self._node, request.department)  # must be one of this center's

        def steps(case: pb.Case) -> list[tuple[str, pb.Assigned]]:
            department = request.department or book.concerned(self._node, case.category)[0].name
            slip = pb.AssignmentSlip(department=department, requirement=request.requirement)
            if request.HasField("deadline"):
                slip.deadline.CopyFrom(request.deadline)
            return [("assigned", pb.Assigned(slip=slip))]

        return await self._held_cases.advance(request, steps)

    @grpc_method
    async def Whistle(self, request: routing_pb2.WhistleRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        book = self._departments.current()
        now = self._clock.now()

        def steps(case: pb.Case) -> list[tuple[str, pb.Whistled]]:
            if request.departments:
                named = [book.department(self._node, name) for name in request.departments]
                summons = [s for d in named for s in book.summons_of(d, now)]
            else:
                summons = book.summons(self._node, case.category, now)
            called = {s.department for s in case.summons}
            fresh = [s for s in summons if s.department not in called]  # a second whistle adds the rest
            return [("whistled", pb.Whistled(reason=request.reason, summons=fresh or summons))]

        return await self._held_cases.advance(request, steps)

    @grpc_method
    async def ReportForDuty(
        self, request: routing_pb2.ReportForDutyRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        step = pb.ReportedForDuty(department=request.department)
        return await self._held_cases.advance(request, lambda _c: [("reported_for_duty", step)])

    @grpc_method
    async def FormTaskForce(
        self, request: routing_pb2.FormTaskForceRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        book = self._departments.current()
        book.department(self._node, request.lead_department)
        subtasks = []
        for number, given in enumerate(request.subtasks, start=1):
            book.department(self._node, given.department)
            if given.department == request.lead_department:
                raise InvalidArgument("subtasks", f"牵头部门“{given.department}”不另设子任务")
            task = pb.SubTask()
            task.CopyFrom(given)
            task.id = task.id or f"T{number}"
            subtasks.append(task)
        step = pb.TaskForceFormed(lead_department=request.lead_department, subtasks=subtasks)
        return await self._held_cases.advance(request, lambda _c: [("task_force_formed", step)])

    @grpc_method
    async def CompleteSubTask(
        self, request: routing_pb2.CompleteSubTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        step = pb.SubTaskDone(subtask_id=request.subtask_id, result=request.result)
        return await self._held_cases.advance(request, lambda _c: [("subtask_done", step)])
