"""The demo's robot works the simulator's cases and leaves the operators' to them (issue 22): with
towns not accepting escalations by themselves, it accepts the simulator's escalations at the town
and walks them round the loop, while a case an operator took in, and an operator's escalation,
stay where they are."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.natsserver import NatsServer
from devtools.robot import run_handling
from devtools.simulator import SIMULATED
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import submit_request
from tests.conftest import running_county
from tests.system.test_county_sync import eventually

VILLAGE, TOWN = "371702101001", "371702101"
DONE = (pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED, pb.CASE_STATUS_REOPENED)
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_the_robot_works_only_the_simulators_cases(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_ROUTING_AUTO_ACCEPT_ESCALATIONS", "false")
    async with running_county(tmp_path, nats_server.url, database_url, towns=1, villages=1) as county:
        async with channel(county[VILLAGE].grpc_address) as ch:
            intake, routing = intake_pb2_grpc.IntakeStub(ch), routing_pb2_grpc.RoutingStub(ch)

            async def take(prefix: str, escalate: bool) -> str:
                request = submit_request(VILLAGE, client_request_id=f"{prefix}robot-{int(escalate)}-0001")
                case = (await intake.SubmitCase(request)).case
                if escalate:
                    await routing.Escalate(routing_pb2.EscalateRequest(case_id=case.id, actor="值班员", reason="跨村"))
                return case.id

            simulated, simulated_up = await take(SIMULATED, False), await take(SIMULATED, True)
            operators, operators_up = await take("console-", False), await take("console-", True)

        ports = {code: (int(n.grpc_address.rsplit(":", 1)[1]), n.http_port) for code, n in county.nodes.items()}
        stop = asyncio.Event()
        robot = asyncio.create_task(run_handling(topology=county.topology.with_ports(ports), stop=stop, interval_s=0.2))
        try:

            async def case_at(code: str, case_id: str) -> pb.Case:
                async with channel(county[code].grpc_address) as ch:
                    return await intake_pb2_grpc.IntakeStub(ch).GetCase(intake_pb2.GetCaseRequest(id=case_id))

            async def simulated_done() -> bool:
                here, up = await case_at(VILLAGE, simulated), await case_at(TOWN, simulated_up)
                return here.status in DONE and up.holder_node == TOWN and up.status in DONE

            await eventually(simulated_done, within_s=60, what="the simulator's cases worked, one via the town")
            await asyncio.sleep(1.0)  # five more rounds of the robot
            assert (await case_at(VILLAGE, operators)).status == pb.CASE_STATUS_RECEIVED
            waiting = await case_at(TOWN, operators_up)
            assert waiting.status == pb.CASE_STATUS_ESCALATING and waiting.escalation_to == TOWN
            assert waiting.holder_node == VILLAGE, "the operator's escalation waits for the town's operator"
        finally:
            stop.set()
            await robot
