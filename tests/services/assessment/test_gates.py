"""四必评 over gRPC at a town, with real nodes: every gate rule, who may act, and the figures."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.grpcutil import channel
from fengqiao.v1 import assessment_pb2 as pb
from fengqiao.v1 import assessment_pb2_grpc, common_pb2, federation_pb2, federation_pb2_grpc
from harness.county import LocalCounty
from services.assessment import store
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"
NOVEMBER = (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


def filed(*, supporters: int = 95, points: tuple[tuple[int, int], ...] = (), measures: int = 0) -> pb.GateAssessment:
    return pb.GateAssessment(
        dimensions=pb.Dimensions(legality=90, reasonableness=85, feasibility=88, controllability=80),
        survey=pb.Survey(respondents=200, supporters=supporters * 2),
        risk_points=[pb.RiskPoint(description=f"风险点{i}", likelihood=a, impact=b) for i, (a, b) in enumerate(points)],
        measures=[
            pb.Measure(
                description="逐户解释补偿标准", responsible_unit="镇征迁办", deadline=Timestamp(seconds=1_800_000_000)
            )
            for _ in range(measures)
        ],
        assessor="县社会稳定风险评估中心",
    )


async def call(local: LocalCounty, code: str, method: str, request: object) -> pb.Project:
    async with channel(local[code].grpc_address) as ch:
        reply = await getattr(assessment_pb2_grpc.AssessmentStub(ch), method)(request)
    return reply.project if isinstance(reply, pb.AssessGateResponse) else reply


async def refused(local: LocalCounty, code: str, method: str, request: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(local, code, method, request)
    return caught.value


REGISTER = pb.RegisterProjectRequest(
    name="东城产业园区一期征地", kind="征地", villages=[VILLAGE], people_affected=320, actor="镇值班员"
)


async def test_every_gate_rule_holds_over_grpc_at_a_town(chain: LocalCounty) -> None:
    at_village = await refused(chain, VILLAGE, "RegisterProject", REGISTER)
    assert at_village.code() == grpc.StatusCode.FAILED_PRECONDITION and "村级综治站不能登记" in at_village.details()
    project = await call(chain, TOWN, "RegisterProject", REGISTER)
    assert project.node == TOWN and project.stage == "立项" and project.status == "active"
    pid = project.id

    skip = await refused(
        chain, TOWN, "AssessGate", pb.AssessGateRequest(project_id=pid, stage="决策", assessment=filed())
    )
    assert skip.code() == grpc.StatusCode.FAILED_PRECONDITION and "不能跳过“立项”环节" in skip.details()
    early = await refused(chain, TOWN, "PassGate", pb.PassGateRequest(project_id=pid, stage="立项"))
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION and "尚未完成稳定风险评估" in early.details()

    # 立项 low: passes.
    await call(chain, TOWN, "AssessGate", pb.AssessGateRequest(project_id=pid, stage="立项", assessment=filed()))
    assert (await call(chain, TOWN, "PassGate", pb.PassGateRequest(project_id=pid, stage="立项"))).stage == "决策"

    # 决策 high: blocked, suspended, cannot pass.
    async with channel(chain[TOWN].grpc_address) as ch:
        high = await assessment_pb2_grpc.AssessmentStub(ch).AssessGate(
            pb.AssessGateRequest(project_id=pid, stage="决策", assessment=filed(supporters=40, points=((4, 4),)))
        )
    assert high.blocked and high.level == "high" and high.project.status == "suspended"
    blocked = await refused(chain, TOWN, "PassGate", pb.PassGateRequest(project_id=pid, stage="决策"))
    assert blocked.code() == grpc.StatusCode.FAILED_PRECONDITION and "项目已暂停" in blocked.details()

    # Mitigation, then reassessment at medium: unblocked, passes with its measure tracked.
    hazard = high.project.hazards[0]
    resolved = pb.ResolveHazardRequest(project_id=pid, hazard_id=hazard.id, resolution="补偿方案经村民代表会议通过")
    assert (await call(chain, TOWN, "ResolveHazard", resolved)).hazards[0].resolved
    medium = filed(supporters=75, measures=1)
    again = await call(chain, TOWN, "AssessGate", pb.AssessGateRequest(project_id=pid, stage="决策", assessment=medium))
    assert again.status == "active" and again.gates[1].level == "medium" and again.gates[1].assessments == 2
    passed = await call(chain, TOWN, "PassGate", pb.PassGateRequest(project_id=pid, stage="决策"))
    assert passed.stage == "实施" and [m.completed for m in passed.measures] == [False]
    done = await call(
        chain, TOWN, "CompleteMeasure", pb.CompleteMeasureRequest(project_id=pid, measure_id=passed.measures[0].id)
    )
    assert done.measures[0].completed

    # A medium assessment without measures is not complete; the county cannot advance a town's project.
    incomplete = pb.AssessGateRequest(project_id=pid, stage="实施", assessment=filed(supporters=75))
    assert (await refused(chain, TOWN, "AssessGate", incomplete)).code() == grpc.StatusCode.INVALID_ARGUMENT

    async def county_has_it() -> bool:
        db = chain[COUNTY].ctx.db  # type: ignore[union-attr]
        copy = await db.read(lambda s: store.load_project(s, project_id=pid))
        return copy is not None and copy.version == done.version

    await eventually(county_has_it, within_s=10, what="the county holds the town's project at its latest version")
    elsewhere = await refused(chain, COUNTY, "PassGate", pb.PassGateRequest(project_id=pid, stage="实施"))
    assert elsewhere.code() == grpc.StatusCode.FAILED_PRECONDITION and "只能由该中心办理" in elsewhere.details()

    for code in (TOWN, COUNTY):
        db = chain[code].ctx.db  # type: ignore[union-attr]
        counts = await db.read(lambda s: store.assessment_counts(s, within=COUNTY, start=NOVEMBER[0], end=NOVEMBER[1]))
        assert counts == store.AssessmentCounts(
            assessments_done=3, hazards_found=1, hazards_resolved=1, projects_blocked=1
        ), code
    async with channel(chain[COUNTY].grpc_address) as ch:  # the same counts in the county's figures
        stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
            federation_pb2.GetNodeStatsRequest(code=COUNTY, period="2026-11", include_children=True)
        )
    assert (stats.assessments_done, stats.hazards_found, stats.hazards_resolved, stats.projects_blocked) == (3, 1, 1, 1)
    town = next(c for c in stats.children if c.code == TOWN)
    assert town.assessments_done == 3 and all(c.assessments_done == 0 for c in town.children)


async def test_the_town_lists_its_projects_a_page_at_a_time_and_by_risk_level(chain: LocalCounty) -> None:
    ids = sorted([(await call(chain, TOWN, "RegisterProject", REGISTER)).id for _ in range(3)])
    medium = filed(supporters=75, measures=1)
    await call(chain, TOWN, "AssessGate", pb.AssessGateRequest(project_id=ids[1], stage="立项", assessment=medium))
    await call(chain, TOWN, "PassGate", pb.PassGateRequest(project_id=ids[1], stage="立项"))
    async with channel(chain[TOWN].grpc_address) as ch:
        stub = assessment_pb2_grpc.AssessmentStub(ch)
        first = await stub.ListProjects(pb.ListProjectsRequest(page=common_pb2.PageRequest(page_size=2)))
        token = first.page.next_page_token
        rest = await stub.ListProjects(
            pb.ListProjectsRequest(page=common_pb2.PageRequest(page_size=2, page_token=token))
        )
        by_level = await stub.ListProjects(pb.ListProjectsRequest(level="medium"))
    assert [p.id for p in first.projects] + [p.id for p in rest.projects] == ids and not rest.page.next_page_token
    assert [(p.id, p.stage) for p in by_level.projects] == [(ids[1], "决策")]
