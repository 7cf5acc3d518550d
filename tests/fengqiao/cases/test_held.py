"""The one path for a case step: any request with the step envelope appends its steps to a case
held here in one transaction, wakes the outbox and answers the case opened; a stale version, a
blank actor or a node that does not hold the case changes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from fengqiao import migrations
from fengqiao.cases import store as casestore
from fengqiao.cases.held import HeldCases
from fengqiao.clock import FakeClock
from fengqiao.db import Database
from fengqiao.errors import IllegalTransition, InvalidArgument
from fengqiao.security import sealing
from fengqiao.v1 import case_pb2 as pb

VILLAGE, TOWN = "371702101001", "371702101"
KEY = sealing.from_settings(sealing.new_key())
PARTY = pb.Party(name="张三", phone="13812345678", role="申请人")


@dataclasses.dataclass(frozen=True)
class Step:
    """Any message with the envelope will do: the services pass their gRPC requests."""

    case_id: str
    actor: str = "值班员"
    expected_version: int = 0


@pytest.fixture
def db(database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(database_url("held"))
    migrations.upgrade(database.url)
    yield database
    database.close()


async def received_case(db: Database, clock: FakeClock) -> pb.Case:
    case = pb.Case(receipt_no=f"R-{uuid.uuid4().hex[:6]}", origin_node=VILLAGE, category="邻里", parties=[PARTY])
    case.clock_start.FromDatetime(clock.now())
    KEY.seal(case)
    event = pb.CaseEvent(
        id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        seq=1,
        node=VILLAGE,
        actor="网格员",
        received=pb.Received(case=case),
    )
    event.at.FromDatetime(clock.now())
    return await db.write(
        lambda s: casestore.append_events(s, case=None, events=[event], node_code=VILLAGE, headers={}, now=clock.now())
    )


def triage(case: pb.Case) -> list[tuple[str, pb.Triaged]]:
    step = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
    step.deadline.FromDatetime(case.clock_start.ToDatetime(dt.UTC) + dt.timedelta(days=7))
    return [("triaged", step)]


async def events_of(db: Database, case_id: str) -> list[pb.CaseEvent]:
    return await db.read(lambda s: casestore.list_events(s, case_id=case_id))


async def test_a_step_at_the_current_version_is_appended_the_outbox_woken_and_the_case_answered_opened(
    db: Database,
) -> None:
    clock, commits = FakeClock(), []
    held = HeldCases(db=db, node_code=VILLAGE, clock=clock, key=KEY, on_commit=lambda: commits.append(1))
    case = await received_case(db, clock)

    answered = await held.advance(Step(case.id, expected_version=1), triage)

    assert answered.version == 2 and answered.status == pb.CASE_STATUS_TRIAGED
    assert list(answered.parties) == [PARTY] and commits == [1]
    stored = await db.read(lambda s: casestore.load_case(s, case_id=case.id))
    assert stored is not None and stored.version == 2 and not stored.parties  # sealed at rest
    last = (await events_of(db, case.id))[-1]
    assert (last.node, last.actor, last.at.ToDatetime(dt.UTC)) == (VILLAGE, "值班员", clock.now())


async def test_any_version_is_taken_when_none_is_expected(db: Database) -> None:
    clock = FakeClock()
    held = HeldCases(db=db, node_code=VILLAGE, clock=clock, key=KEY, on_commit=lambda: None)
    case = await received_case(db, clock)
    assert (await held.advance(Step(case.id), triage)).version == 2


@pytest.mark.parametrize(
    ("node", "step", "refusal"),
    [
        (VILLAGE, Step("", expected_version=1), "案件已被他人更新（当前版本 2，请求版本 1），请刷新后重试"),
        (VILLAGE, Step("", actor=" "), "操作人不能为空"),
        (TOWN, Step(""), f"案件由 {VILLAGE} 承办，只有承办中心可以推进"),
    ],
)
async def test_a_refused_step_changes_nothing_and_wakes_nothing(
    db: Database, node: str, step: Step, refusal: str
) -> None:
    clock, commits = FakeClock(), []
    case = await received_case(db, clock)
    await HeldCases(db=db, node_code=VILLAGE, clock=clock, key=KEY, on_commit=lambda: None).advance(
        Step(case.id), triage
    )  # now at version 2
    before = await events_of(db, case.id)
    held = HeldCases(db=db, node_code=node, clock=clock, key=KEY, on_commit=lambda: commits.append(1))

    with pytest.raises((IllegalTransition, InvalidArgument), match=re.escape(refusal)):
        await held.advance(dataclasses.replace(step, case_id=case.id), triage)

    assert await events_of(db, case.id) == before and commits == []
