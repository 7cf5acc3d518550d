"""The leaf topology changes and fails: a node joins, a buffer fills, a county server dies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fengqiao.topology import Limits, NatsSpec, NodeSpec
from harness.county import small_county
from tests.system.leaf_support import COUNTY, TOWN, VILLAGE, leaf_county, node_links, received_events, submit
from tests.system.test_county_sync import eventually
from tests.system.test_leaf_links import submit_many, wait_all

NEW_VILLAGE = "371702101002"


async def test_a_node_added_to_the_topology_joins_restarting_only_itself_and_its_parent(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        untouched = {code: (local[code], [s.process.pid for s in local.servers[code]]) for code in (COUNTY, VILLAGE)}
        await local.add_node(NodeSpec(code=NEW_VILLAGE, name="测试1镇2村综治站"))
        assert (local.rendered / NEW_VILLAGE / "nats-server.conf").exists()
        await submit(local, NEW_VILLAGE)
        await submit(local, VILLAGE)
        for code in (TOWN, COUNTY):
            await wait_all(local, code, NEW_VILLAGE, 1, within_s=20)
            await wait_all(local, code, VILLAGE, 1, within_s=20)
        for code, (node, pids) in untouched.items():  # neither restarted
            assert local[code] is node and [s.process.pid for s in local.servers[code]] == pids  # type: ignore[union-attr]
        links = await node_links(local, TOWN)
        assert links[NEW_VILLAGE].upstream_link == "up"


async def test_a_full_buffer_keeps_cases_in_the_outbox_raises_the_alarm_and_loses_nothing(tmp_path: Path) -> None:
    async with leaf_county(tmp_path, limits={VILLAGE: Limits(buffer_msgs=10)}) as local:
        accepted = await submit_many(local, VILLAGE, 15)
        assert len(accepted) == 15  # the village keeps taking cases in
        await wait_all(local, TOWN, VILLAGE, 10, within_s=20)

        async def alarm() -> bool:
            own = (await node_links(local, VILLAGE))[VILLAGE]
            return own.upstream_link == "buffer_full" and own.upstream_lag >= 5

        await eventually(alarm, within_s=10, what="the village shows its buffer full with 5 cases waiting")
        assert (await node_links(local, TOWN))[VILLAGE].upstream_link == "up"  # the link itself is fine
        assert await received_events(local, TOWN, origin=VILLAGE) == (10, 10)

        # The operator raises the limit: re-render, restart the village; the outbox drains.
        local.apply_limits({VILLAGE: Limits(buffer_msgs=1000)})
        local.render()
        await local.stop(VILLAGE)
        await local.start(VILLAGE)
        for code in (TOWN, COUNTY):
            await wait_all(local, code, VILLAGE, 15, within_s=20)
        assert (await node_links(local, VILLAGE))[VILLAGE].upstream_link == "up"


async def test_a_county_cluster_of_three_keeps_syncing_when_one_of_its_servers_is_killed(tmp_path: Path) -> None:
    topology = small_county(towns=1, villages=1)
    county = dataclasses.replace(topology.county, nats=NatsSpec(servers=3))
    topology = dataclasses.replace(topology, nodes=(county, *topology.nodes[1:]))
    async with leaf_county(tmp_path, topology) as local:
        assert len(local.servers[COUNTY]) == 3
        await submit(local, VILLAGE)
        await wait_all(local, COUNTY, VILLAGE, 1, within_s=30)

        async def replicated() -> bool:
            try:
                info = await local[COUNTY].ctx.js.stream_info(f"FQ_EVENTS_{COUNTY}")  # type: ignore[union-attr]
            except Exception:  # the meta leader may still be settling
                return False
            return info.config.num_replicas == 3 and info.cluster is not None and len(info.cluster.replicas or []) == 2

        await eventually(replicated, within_s=20, what="the county's events stream on all three servers")
        victim = local.servers[COUNTY][0]
        victim.kill()
        await submit_many(local, VILLAGE, 20)
        await wait_all(local, COUNTY, VILLAGE, 21, within_s=90)  # a new leader is elected first
