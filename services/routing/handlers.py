"""The Routing gRPC methods: where a case is held, and 上报 between tiers."""

from __future__ import annotations

import grpc

from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.grpcutil import grpc_method
from fengqiao.topology import NodeSpec
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2, routing_pb2, routing_pb2_grpc
from services.routing import policy, rules
from services.routing.directives.handlers import DirectiveMethods
from services.routing.dispatch import DispatchMethods
from services.routing.joint.handlers import JointMethods, RiskAlertMethods


def _hop(spec: NodeSpec) -> routing_pb2.RouteHop:
    return routing_pb2.RouteHop(code=spec.code, name=spec.name, tier=common_pb2.Tier.ValueType(spec.tier))


class RoutingHandlers(
    DispatchMethods, DirectiveMethods, JointMethods, RiskAlertMethods, routing_pb2_grpc.RoutingServicer
):
    """Tells where a case is held, moves it between tiers, dispatches it to departments, and
    sends commands down."""

    @grpc_method
    async def GetRoute(
        self, request: routing_pb2.GetRouteRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.Route:
        case = await self._case(request.case_id)
        holder = self._topology.node(case.holder_node)
        return routing_pb2.Route(
            case_id=case.id,
            holder=_hop(holder),
            escalation_path=[_hop(s) for s in rules.escalation_path(self._topology, holder.code)],
        )

    @grpc_method
    async def Escalate(self, request: routing_pb2.EscalateRequest, context: grpc.aio.ServicerContext) -> pb.Case:
        if not request.reason.strip():
            raise InvalidArgument("reason", "人工上报须说明理由")

        def steps(case: pb.Case) -> list[tuple[str, pb.EscalationRequested]]:
            step = rules.escalation_request(
                case, reason=request.reason, rule_id=policy.OPERATOR_RULE, rule_name="人工上报"
            )
            return [("escalation_requested", step)]

        return await self._held_cases.advance(request, steps)

    @grpc_method
    async def ApplyPolicy(
        self, request: routing_pb2.ApplyPolicyRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.PolicyDecision:
        case = await self._case(request.case_id)
        if case.holder_node != self._node:
            raise IllegalTransition(f"案件由 {case.holder_node} 承办，只有承办中心可以研判是否上报")
        facts = policy.facts_from_case(
            case,
            people=request.people,
            amount_yuan=request.amount_yuan,
            severity=request.severity or "low",
            failed_mediations=request.failed_mediations,
            repeat_petition=request.repeat_petition,
            party_divisions=list(request.party_divisions) or None,
        )
        decision = policy.decide(self._policy.current(), facts, self._node)
        if decision.escalate:
            step = rules.escalation_request(
                case, reason=decision.reason, rule_id=decision.rule_id, rule_name=decision.rule_name
            )
            case = await self._held_cases.advance(request, lambda _c: [("escalation_requested", step)])
        return routing_pb2.PolicyDecision(
            escalate=decision.escalate,
            target_tier=common_pb2.Tier.ValueType(decision.target),
            next_node=decision.next_node or "",
            rule_id=decision.rule_id,
            rule_name=decision.rule_name,
            reason=decision.reason,
            case=self._key.opened(case),
        )

    @grpc_method
    async def AcceptEscalation(
        self, request: routing_pb2.AcceptEscalationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        step = rules.acceptance(self._clock.now(), self._settings)
        return await self._held_cases.advance(request, lambda _c: [("escalation_accepted", step)])

    @grpc_method
    async def RefuseEscalation(
        self, request: routing_pb2.RefuseEscalationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Case:
        step = pb.EscalationRefused(reason=request.reason)
        return await self._held_cases.advance(request, lambda _c: [("escalation_refused", step)])
