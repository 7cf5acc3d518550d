"""The soak's drivers against a real running county (three mutually neighbouring towns, one
village each): everything they drive checks out, their checks catch a ledger that does not
match what the county holds, and a case whose every answer is lost still reaches 归档."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from bench.soak.calls import Nodes
from bench.soak.cases import CaseDriver, CaseLedger, Facts
from bench.soak.joint import JointRecord, check_joint, run_joint_cases
from bench.soak.projects import check_projects, run_projects
from devtools.natsserver import NatsServer
from devtools.simulator import CaseFactory
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2
from harness.county import LocalCounty, small_county

COUNTY, A, B, C = "371702", "371702101", "371702102", "371702103"
NEIGHBOURS = {A: [B, C], B: [A, C], C: [A, B]}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # the nodes run on the system clock here


@pytest.fixture
async def nodes(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> AsyncIterator[tuple[LocalCounty, Nodes]]:
    """The running county and stubs of each of its nodes."""
    local = LocalCounty(
        small_county(towns=3, villages=1, neighbours=NEIGHBOURS), tmp_path, nats_server.url, database_url
    )
    await local.start()
    stubs = Nodes({code: node.grpc_address for code, node in local.nodes.items()})
    try:
        yield local, stubs
    finally:
        await stubs.close()
        await local.stop()


async def test_joint_cases_all_close_with_one_timeline_and_the_check_catches_a_wrong_ledger(
    nodes: tuple[LocalCounty, Nodes],
) -> None:
    local, stubs = nodes
    ledger = await run_joint_cases(
        stubs, local.topology, per_town=2, rng=random.Random(7), stop=asyncio.Event(), spread_s=1, now=now
    )
    counts = ledger.counts()
    assert (counts["opened"], counts["closed"], counts["unfinished"]) == (6, 6, 0), ledger.summary()
    assert counts["notes"] >= 6 and all(len(c.accepted) + len(c.declined) == len(c.invited) for c in ledger.cases)
    assert await check_joint(stubs, local.topology, ledger, settle_s=20) == []

    wrong = copy.deepcopy(ledger)
    wrong.cases[0].notes += 1  # a note lost
    wrong.cases.append(JointRecord(lead=A, request_id="soak-joint-none", title="x", invited=[B], id="no-such-case"))
    forgotten = wrong.cases.pop(1)  # a joint case the ledger does not know
    problems = await check_joint(stubs, local.topology, wrong, settle_s=0)
    assert any(wrong.cases[0].id in p and "notes" in p for p in problems), problems
    assert any("no-such-case" in p and "missing" in p for p in problems), problems
    assert any(forgotten.id in p and "not in the ledger" in p for p in problems), problems
    assert any(p.startswith("county figures") for p in problems), problems


async def test_projects_all_pass_four_gates_and_the_check_catches_a_wrong_ledger(
    nodes: tuple[LocalCounty, Nodes],
) -> None:
    local, stubs = nodes
    ledger = await run_projects(
        stubs, local.topology, per_town=2, rng=random.Random(11), stop=asyncio.Event(), spread_s=1, now=now
    )
    counts = ledger.counts()
    assert (counts["registered"], counts["completed"], counts["unfinished"]) == (7, 7, 0), ledger.summary()
    assert await check_projects(stubs, local.topology, ledger, settle_s=20) == []

    wrong = copy.deepcopy(ledger)
    wrong.projects[0].assessments += 1  # an assessment counted twice
    forgotten = wrong.projects.pop(1)  # a project the ledger does not know
    problems = await check_projects(stubs, local.topology, wrong, settle_s=0)
    assert any(forgotten.id in p and "not in the ledger" in p for p in problems), problems
    assert any(p.startswith("county figures") for p in problems), problems


class _AnswersLost:
    """An intake stub whose every step commits at the node but whose answer never arrives,
    as when a link is cut or a process killed just after the commit."""

    READS = frozenset({"SubmitCase", "GetCase", "ListCaseEvents"})

    def __init__(self, stub: object, lost: list[str]) -> None:
        self._stub = stub
        self._lost = lost

    def __getattr__(self, name: str) -> object:
        call = getattr(self._stub, name)
        if name in self.READS:
            return call

        async def lose_the_answer(request: object) -> object:
            await call(request)
            self._lost.append(name)
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), details="answer lost"
            )

        return lose_the_answer


async def test_a_case_whose_every_answer_is_lost_still_reaches_archive(nodes: tuple[LocalCounty, Nodes]) -> None:
    """Each step is retried, refused as already done, and resolved by reading the case again:
    a run of such steps is progress, not a reason to give up (the soak once gave up after 4)."""
    local, stubs = nodes
    lost: list[str] = []
    plain_intake = stubs.intake
    stubs.intake = lambda code: _AnswersLost(plain_intake(code), lost)  # type: ignore[method-assign,assignment,return-value]
    ledger = CaseLedger()
    driver = CaseDriver(stubs, ledger, step_pause_s=0, within_s=30)
    village = f"{A}001"
    request = CaseFactory(rng=random.Random(3), topology=local.topology).make(village)
    await driver.run(
        request, Facts(people=1, amount_yuan=0, failed_mediations=0, party_divisions=[village]), random.Random(5)
    )

    assert ledger.unfinished == {}
    case_id = ledger.case_of[request.client_request_id]
    assert ledger.archived == {case_id}
    assert len(lost) >= 8 and ledger.retried_unknown == len(lost)  # every step: lost, refused, read again
    case = await plain_intake(ledger.holder[case_id]).GetCase(intake_pb2.GetCaseRequest(id=case_id))
    assert case.status == pb.CASE_STATUS_ARCHIVED
