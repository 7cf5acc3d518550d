"""The 四必评 and 三联 figures reach the federation through the node's figure sources, which the
host wires whichever services run in the process: they read the node's database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from devtools.natsserver import NatsServer
from fengqiao import migrations
from fengqiao.clock import FakeClock
from fengqiao.db import Database
from fengqiao.grpcutil import channel
from fengqiao.v1 import assessment_pb2 as pb
from fengqiao.v1 import assessment_pb2_grpc, federation_pb2, federation_pb2_grpc
from harness.county import LocalCounty, small_county
from host.node import Node, figure_sources

VILLAGE, COUNTY = "371702101001", "371702"


def test_every_figure_a_source_gives_is_a_field_of_node_stats(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'figures.db'}")
    sources = figure_sources()
    migrations.upgrade(db.url)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    try:
        given = db.transaction(
            lambda s: [src(s, within=COUNTY, start=start, end=start + dt.timedelta(days=30)) for src in sources]
        )
    finally:
        db.close()
    names = [name for counts in given for name in counts]
    four = ["assessments_done", "hazards_found", "hazards_resolved", "projects_blocked"]  # 四必评
    assert sorted(names) == sorted([*four, "joint_cases_opened", "joint_cases_closed"]), "each figure given once"
    assert set(names) <= set(federation_pb2.NodeStats.DESCRIPTOR.fields_by_name)
    assert all(count == 0 for counts in given for count in counts.values())  # an empty database


async def test_a_federation_process_counts_the_assessments_another_process_filed_in_its_database(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    url = database_url(COUNTY)  # one database, two processes
    local = LocalCounty(
        small_county(towns=1, villages=1), tmp_path / "county", nats_server.url, lambda _: url, clock=FakeClock()
    )
    await local.start(COUNTY, services=("assessment",), serve_http=False)
    figures = Node(local.settings(COUNTY, services=("federation",), serve_http=False), clock=local.clock)
    await figures.start()
    try:
        async with channel(local[COUNTY].grpc_address) as ch:
            stub = assessment_pb2_grpc.AssessmentStub(ch)
            project = await stub.RegisterProject(
                pb.RegisterProjectRequest(
                    name="东城产业园区一期征地", kind="征地", villages=[VILLAGE], people_affected=320, actor="县值班员"
                )
            )
            filed = pb.GateAssessment(
                dimensions=pb.Dimensions(legality=90, reasonableness=85, feasibility=88, controllability=80),
                survey=pb.Survey(respondents=200, supporters=190),
                assessor="县社会稳定风险评估中心",
            )
            await stub.AssessGate(pb.AssessGateRequest(project_id=project.id, stage="立项", assessment=filed))
        async with channel(figures.grpc_address) as ch:
            stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
                federation_pb2.GetNodeStatsRequest(code=COUNTY, period="2026-11")
            )
        assert stats.assessments_done == 1 and stats.projects_blocked == 0
        assert (stats.joint_cases_opened, stats.joint_cases_closed) == (0, 0)
    finally:
        await figures.stop()
        await local.stop()
