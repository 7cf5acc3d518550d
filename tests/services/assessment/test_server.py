"""The subtree sync of projects: replicated events apply once, in order; foreign or malformed ones
are dead letters. And registration: a retried request id registers its project once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao import migrations
from fengqiao.db import Database
from fengqiao.divisions import event_subject
from fengqiao.grpcutil import channel
from fengqiao.inbox import BadMessage, NotYet
from fengqiao.v1 import assessment_pb2 as pb
from fengqiao.v1 import assessment_pb2_grpc
from harness.county import LocalCounty
from services.assessment import store
from services.assessment.consumers import project_event_handler

TOWN, COUNTY = "371702101", "371702"


class Delivered:
    """What the handler reads of a delivered JetStream message: its body, its subject and its
    headers (none: published into the receiving node's own stream)."""

    def __init__(self, data: bytes, subject: str = event_subject(TOWN, "project", "registered")) -> None:
        self.data = data
        self.subject = subject
        self.headers: dict[str, str] | None = None


def event(seq: int, *, node: str = TOWN, **payload: Any) -> pb.ProjectEvent:
    if not payload:
        payload = {"gate_passed": pb.GatePassed(stage="立项")}
    return pb.ProjectEvent(
        id=f"e{seq}", project_id="p1", seq=seq, node=node, actor="镇值班员",
        at=Timestamp(seconds=1_795_000_000 + seq), **payload,
    )  # fmt: skip


REGISTERED = event(1, registered=pb.ProjectRegistered(name="政策调整", kind="政策调整", villages=[f"{TOWN}001"]))
ASSESSED = event(
    2,
    assessed=pb.GateAssessed(
        stage="立项",
        assessment=pb.GateAssessment(level="low", risk_points=[pb.RiskPoint(description="误解", hazard_id="h1")]),
    ),
)


@pytest.fixture
def county_db(database_url: Callable[[str], str]) -> Iterator[Database]:
    db = Database(database_url("county"))
    migrations.upgrade(db.url)
    try:
        yield db
    finally:
        db.close()


def deliver(db: Database, message: pb.ProjectEvent | bytes, *, sender: str = TOWN) -> None:
    data = message if isinstance(message, bytes) else message.SerializeToString()
    delivered = Delivered(data, event_subject(sender, "project", "registered"))
    db.transaction(lambda s: project_event_handler(COUNTY)(s, delivered))  # type: ignore[arg-type]


def test_replicated_events_apply_in_order_and_once(county_db: Database) -> None:
    deliver(county_db, REGISTERED)
    with pytest.raises(NotYet):
        deliver(county_db, event(3))
    deliver(county_db, ASSESSED)
    deliver(county_db, ASSESSED)  # a copy through another path: already here
    deliver(county_db, event(3))
    project = county_db.transaction(lambda s: store.get_project(s, project_id="p1"))
    assert project.version == 3 and project.stage == "决策" and project.node == TOWN
    assert [e.seq for e in county_db.transaction(lambda s: store.list_events(s, project_id="p1"))] == [1, 2, 3]
    assert county_db.transaction(lambda s: store.list_projects(s, within=TOWN, limit=10))[0].id == "p1"


def test_foreign_or_malformed_project_events_are_dead_letters(county_db: Database) -> None:
    with pytest.raises(BadMessage, match="辖区外"):
        deliver(county_db, event(1, node="371703101"), sender="371703101")
    with pytest.raises(BadMessage, match=r"^伪造或越权：项目事件自称由 371703101 发出，实际发送中心为 371702101"):
        deliver(county_db, event(1, node="371703101"))
    with pytest.raises(BadMessage, match="无法解析"):
        deliver(county_db, b"\xff\xff\xff")
    with pytest.raises(BadMessage, match="缺少"):
        deliver(county_db, pb.ProjectEvent(id="x", project_id="p1", seq=1, node=TOWN))
    with pytest.raises(BadMessage, match="尚未登记"):
        deliver(county_db, event(1))


def test_only_a_projects_center_writes_its_events_and_none_takes_a_place_already_written(
    county_db: Database,
) -> None:
    sibling = f"{TOWN[:6]}102"
    deliver(county_db, REGISTERED)
    with pytest.raises(
        BadMessage, match=f"^伪造或越权：项目事件（gate_passed）由 {sibling} 发出，只有项目登记中心 {TOWN}"
    ):
        deliver(county_db, event(2, node=sibling), sender=sibling)
    deliver(county_db, REGISTERED)  # the same event again: already here
    second = pb.ProjectEvent()
    second.CopyFrom(REGISTERED)
    second.id = "another"
    with pytest.raises(BadMessage, match="第 1 号事件已由另一事件写入"):
        deliver(county_db, second)
    deliver(county_db, ASSESSED)  # the genuine next event still applies
    project = county_db.transaction(lambda s: store.get_project(s, project_id="p1"))
    assert project.version == 2 and project.node == TOWN


REGISTER = pb.RegisterProjectRequest(
    name="西关旧村改造拆迁", kind="拆迁", villages=[f"{TOWN}001"], people_affected=120, actor="镇值班员"
)


async def register(local: LocalCounty, request: pb.RegisterProjectRequest) -> pb.Project:
    async with channel(local[TOWN].grpc_address) as ch:
        project: pb.Project = await assessment_pb2_grpc.AssessmentStub(ch).RegisterProject(request)
    return project


async def stored_projects(local: LocalCounty) -> list[pb.Project]:
    db = local[TOWN].ctx.db  # type: ignore[union-attr]
    return await db.read(lambda s: store.list_projects(s, within=TOWN, limit=100))


async def test_a_retried_registration_with_the_same_request_id_gives_the_same_project_once(
    chain: LocalCounty,
) -> None:
    request = pb.RegisterProjectRequest()
    request.CopyFrom(REGISTER)
    request.client_request_id = "soak-retry-0001"
    first = await register(chain, request)
    again, concurrent = await asyncio.gather(register(chain, request), register(chain, request))
    assert first.id == again.id == concurrent.id and again.version == 1
    stored = await stored_projects(chain)
    assert [p.id for p in stored] == [first.id]
    db = chain[TOWN].ctx.db  # type: ignore[union-attr]
    assert [e.seq for e in await db.read(lambda s: store.list_events(s, project_id=first.id))] == [1]

    request.client_request_id = "soak-retry-0002"  # another request id: another project
    assert (await register(chain, request)).id != first.id
    plain = [(await register(chain, REGISTER)).id for _ in range(2)]  # no id: as before, two projects
    assert len(set(plain)) == 2 and len(await stored_projects(chain)) == 4


async def test_a_malformed_request_id_is_refused(chain: LocalCounty) -> None:
    request = pb.RegisterProjectRequest()
    request.CopyFrom(REGISTER)
    request.client_request_id = "短"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(chain, request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "请求编号" in (caught.value.details() or "")
