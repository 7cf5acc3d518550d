"""/metrics as Prometheus scrapes it: a running county's every metric, read with
prometheus-client's own text parser; the outbox backlog of a village cut off from its broker
rising and draining; link state following a cut leaf link."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.natsserver import NatsServer
from fengqiao.clock import FakeClock
from fengqiao.divisions import case_subject
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import ADMIN_PASSWORD, LocalCounty, small_county, submit_request
from harness.proxy import LinkProxy
from tests.system.leaf_support import COUNTY, TOWN, VILLAGE, leaf_county
from tests.system.test_county_sync import eventually

GAUGES = (
    "fengqiao_outbox_pending",
    "fengqiao_outbox_oldest_pending_seconds",
    "fengqiao_dead_letters",
    "fengqiao_forged_messages",
    "fengqiao_outbox_quarantined",
    "fengqiao_link_up",
    "fengqiao_source_lag_messages",
    "fengqiao_cases",
    "fengqiao_cases_overdue",
    "fengqiao_escalations_pending",
    "fengqiao_database_size_bytes",
)
COUNTERS = ("fengqiao_outbox_published", "fengqiao_inbox_applied")
HISTOGRAMS = ("fengqiao_grpc_request_duration_seconds", "fengqiao_http_request_duration_seconds")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def submit(local: LocalCounty, code: str) -> pb.Case:
    async with channel(local[code].grpc_address) as ch:
        return (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(code))).case


async def scrape(url: str) -> tuple[dict[str, str], Samples]:
    """Every metric family's type and every sample, parsed as Prometheus would."""
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(url)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    kinds: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        kinds[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return kinds, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


@dataclasses.dataclass
class HubCounty:
    local: LocalCounty
    proxy: LinkProxy  # the village's connection to the county's nats-server
    clock: FakeClock


@pytest.fixture
async def hub(
    tmp_path: Path,
    nats_server: NatsServer,
    database_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[HubCounty]:
    """One village, its town and the county on one nats-server; the village reaches it over a
    link the test cuts (a village without a server of its own). Escalations wait for an operator."""
    monkeypatch.setenv("FQ_ROUTING_AUTO_ACCEPT_ESCALATIONS", "false")
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    local = LocalCounty(small_county(towns=1, villages=1), tmp_path / "county", nats_server.url, database_url, clock)
    proxy = await LinkProxy(nats_server.port).start()
    try:
        await local.start(VILLAGE, nats_url=f"nats://127.0.0.1:{proxy.port}")
        await local.start(TOWN, COUNTY)
        yield HubCounty(local, proxy, clock)
    finally:
        await local.stop()
        await proxy.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_running_county_serves_every_metric_and_the_outbox_rises_while_a_village_is_cut_off(
    hub: HubCounty,
) -> None:
    local = hub.local
    base = f"http://127.0.0.1:{local[COUNTY].http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        nodes = {n["code"]: n for n in (await client.get("/api/v1/nodes")).json()["items"]}
    county_url = nodes[COUNTY]["metrics_url"]
    assert county_url == local[COUNTY].metrics.local_url  # type: ignore[union-attr]
    assert nodes[VILLAGE]["metrics_url"] is None  # its port is not in the topology (tests: any free port)
    village_url = local[VILLAGE].metrics.local_url  # type: ignore[union-attr]
    town_url = local[TOWN].metrics.local_url  # type: ignore[union-attr]

    # Work flows: cases up the tiers, one escalation waiting for the town, one undecodable message.
    first = await submit(local, VILLAGE)
    for _ in range(2):
        await submit(local, VILLAGE)
    async with channel(local[VILLAGE].grpc_address) as ch:
        await routing_pb2_grpc.RoutingStub(ch).Escalate(
            routing_pb2.EscalateRequest(case_id=first.id, actor="村值班员", reason="当事人分属两村")
        )
    await local[VILLAGE].ctx.nc.publish(case_subject(VILLAGE, "received"), b"\xff not a case event")  # type: ignore[union-attr]
    as_town = pb.CaseEvent(id="forged-as-town", case_id="c-forged", seq=1, node=TOWN, received=pb.Received())
    await local[VILLAGE].ctx.nc.publish(case_subject(VILLAGE, "received"), as_town.SerializeToString())  # type: ignore[union-attr]

    async def county_has_everything() -> bool:
        _, samples = await scrape(county_url)
        return (
            total(samples, "fengqiao_cases", node=COUNTY) == 3
            and value(samples, "fengqiao_dead_letters", node=COUNTY) >= 2
            and total(samples, "fengqiao_forged_messages", node=COUNTY, type="received") == 1
        )

    await eventually(
        county_has_everything,
        within_s=15,
        what="3 cases, two dead letters, one of them forged, in the county's metrics",
    )
    kinds, samples = await scrape(county_url)
    for name in GAUGES:
        assert kinds.get(name) == "gauge", name
    for name in COUNTERS:
        assert kinds.get(name) == "counter", name
    for name in HISTOGRAMS:
        assert kinds.get(name) == "histogram", name
    assert all(dict(labels)["node"] == COUNTY for _, labels in samples), "every sample names its node"
    assert value(samples, "fengqiao_cases", node=COUNTY, status="received") == 2
    assert value(samples, "fengqiao_cases", node=COUNTY, status="escalating") == 1
    assert value(samples, "fengqiao_link_up", node=COUNTY, child=TOWN) == 1
    assert value(samples, "fengqiao_link_up", node=COUNTY, child=VILLAGE) == 1
    assert value(samples, "fengqiao_source_lag_messages", node=COUNTY, child=VILLAGE) == 0
    assert value(samples, "fengqiao_outbox_pending", node=COUNTY) == 0
    assert value(samples, "fengqiao_escalations_pending", node=COUNTY) == 0  # addressed to the town
    assert value(samples, "fengqiao_database_size_bytes", node=COUNTY) > 10_000
    assert total(samples, "fengqiao_inbox_applied_total", node=COUNTY) >= 4  # 3 received, 1 escalation
    assert total(samples, "fengqiao_grpc_request_duration_seconds_count", method="/fengqiao.v1.Federation/ListNodes",
                 code="OK") == 1  # fmt: skip
    assert total(samples, "fengqiao_http_request_duration_seconds_count", route="/api/v1/nodes", code="200") == 1

    async def town_waits_for_its_decision() -> bool:
        _, town = await scrape(town_url)
        return value(town, "fengqiao_escalations_pending", node=TOWN) == 1

    await eventually(town_waits_for_its_decision, within_s=10, what="the escalation waiting at the town")

    # The village's link is cut: its outbox keeps what it takes in, and grows older.
    _, before = await scrape(village_url)
    published = value(before, "fengqiao_outbox_published_total", node=VILLAGE)
    assert published >= 4 and value(before, "fengqiao_outbox_pending", node=VILLAGE) == 0
    await hub.proxy.cut()
    for _ in range(5):
        await submit(local, VILLAGE)
    hub.clock.advance(dt.timedelta(days=2))  # past every 24 h deadline
    _, cut = await scrape(village_url)
    assert value(cut, "fengqiao_outbox_pending", node=VILLAGE) >= 5
    assert value(cut, "fengqiao_outbox_oldest_pending_seconds", node=VILLAGE) >= 2 * 86400
    assert value(cut, "fengqiao_cases_overdue", node=VILLAGE) == 8  # the escalated one waits too
    assert value(cut, "fengqiao_outbox_published_total", node=VILLAGE) == published

    hub.proxy.restore()

    async def drained() -> bool:
        _, after = await scrape(village_url)
        return value(after, "fengqiao_outbox_pending", node=VILLAGE) == 0

    await eventually(drained, within_s=20, what="the village's outbox drained after the link returned")
    _, after = await scrape(village_url)
    assert value(after, "fengqiao_outbox_oldest_pending_seconds", node=VILLAGE) == 0
    assert value(after, "fengqiao_outbox_published_total", node=VILLAGE) >= published + 5

    async def county_caught_up() -> bool:
        _, county = await scrape(county_url)
        return total(county, "fengqiao_cases", node=COUNTY) == 8

    await eventually(county_caught_up, within_s=15, what="the county counting the village's 8 cases")


async def test_link_gauges_follow_a_cut_leaf_link(tmp_path: Path) -> None:
    async with leaf_county(tmp_path) as local:
        town_url = local[TOWN].metrics.local_url  # type: ignore[union-attr]

        async def village_link(expected: float) -> bool:
            _, samples = await scrape(town_url)
            return samples.get(("fengqiao_link_up", frozenset({"node": TOWN, "child": VILLAGE}.items()))) == expected

        await eventually(lambda: village_link(1.0), within_s=10, what="the town sees the village's link up")
        await local.cut(VILLAGE)
        await eventually(lambda: village_link(0.0), within_s=30, what="the town sees the village's link down")
        local.restore(VILLAGE)
        await submit(local, VILLAGE)
        await eventually(lambda: village_link(1.0), within_s=30, what="the town sees the village's link up again")
