"""The leaf topology: each node its own nats-server and JetStream domain, linked by stream sourcing."""

from __future__ import annotations

from pathlib import Path

from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import routing_pb2, routing_pb2_grpc
from tests.services.routing.test_escalation import wait_holder
from tests.system.leaf_support import COUNTY, TOWN, VILLAGE, leaf_county, node_links, received_events, submit
from tests.system.test_county_sync import eventually


async def test_each_node_runs_its_own_server_from_the_rendered_config_in_its_own_domain(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        urls = {code: local.client_url(code) for code in (VILLAGE, TOWN, COUNTY)}
        assert len(set(urls.values())) == 3
        for code in (VILLAGE, TOWN, COUNTY):
            config = (local.rendered / code / "nats-server.conf").read_text()
            assert f'domain: "fq{code}"' in config and 'sync_interval: "always"' in config
            assert local.servers[code][0].config == local.rendered / code / "nats-server.conf"
            assert local[code].ctx.nc.connected_url.port == local.topology.node(code).nats.client_port  # type: ignore[union-attr]
        assert "no_advertise: true" in (local.rendered / TOWN / "nats-server.conf").read_text()
        village_conf = (local.rendered / VILLAGE / "nats-server.conf").read_text()
        assert f"nats-leaf://127.0.0.1:{local.proxies[VILLAGE][0].port}" in village_conf


async def test_a_case_goes_up_by_sourcing_and_the_towns_acceptance_comes_down_filtered(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        case = await submit(local, VILLAGE)
        for code in (TOWN, COUNTY):
            await eventually(lambda code=code: _has(local, code), within_s=10, what=f"the village's case at {code}")
        async with channel(local[VILLAGE].grpc_address) as ch:
            await routing_pb2_grpc.RoutingStub(ch).Escalate(
                routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="当事人分属两村")
            )
        await wait_holder(local, TOWN, case.id, TOWN, pb.CASE_STATUS_RECEIVED)  # type: ignore[arg-type]
        # The town's acceptance reaches the village only down its own filtered source.
        await wait_holder(local, VILLAGE, case.id, TOWN, pb.CASE_STATUS_RECEIVED)  # type: ignore[arg-type]
        await wait_holder(local, COUNTY, case.id, TOWN, pb.CASE_STATUS_RECEIVED)  # type: ignore[arg-type]

        links = await node_links(local, COUNTY)
        assert links[COUNTY].upstream_link == "n/a"
        assert links[TOWN].upstream_link == "up" and links[VILLAGE].upstream_link == "up"
        own = await node_links(local, VILLAGE)
        assert own[VILLAGE].upstream_link == "up" and own[VILLAGE].upstream_lag == 0


async def _has(local, code: str) -> bool:  # type: ignore[no-untyped-def]
    cases, received = await received_events(local, code, origin=VILLAGE)
    return cases == 1 and received == 1
