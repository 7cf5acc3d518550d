"""The demo simulator: generated cases are valid, varied and reproducible; sending retries."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from devtools import simulator
from devtools.simulator import CaseFactory, run_simulator
from fengqiao.cases.parties import id_check_digit, is_valid_phone
from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES, DEFAULT_CHANNELS, Vocabulary
from fengqiao.divisions import Tier
from fengqiao.topology import Topology, load_topology
from fengqiao.v1 import case_pb2, intake_pb2
from services.intake.config import IntakeSettings
from services.intake.rules import validate_submit

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = load_topology(REPO_ROOT / "deploy" / "topology" / "mudan-sample.yaml")
VILLAGES = [n.code for n in TOPOLOGY.nodes if n.tier is Tier.VILLAGE]
SEED = 20261122
COUNT = 500


def generate(seed: int, count: int = COUNT) -> list[intake_pb2.SubmitCaseRequest]:
    rng = random.Random(seed)
    factory = CaseFactory(rng=rng, topology=TOPOLOGY)
    return [factory.make(rng.choice(VILLAGES)) for _ in range(count)]


@pytest.fixture(scope="module")
def requests() -> list[intake_pb2.SubmitCaseRequest]:
    return generate(SEED)


def test_the_sample_topology_has_villages_to_simulate() -> None:
    assert len(VILLAGES) == 4


def test_generated_cases_pass_intake_validation(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    settings, vocabulary = IntakeSettings(), Vocabulary()
    for request in requests:
        validate_submit(
            request, node_code=request.division_code, topology=TOPOLOGY, vocabulary=vocabulary, settings=settings
        )


def test_the_same_seed_gives_the_same_requests() -> None:
    assert generate(7, 50) == generate(7, 50)


def test_different_seeds_give_different_requests() -> None:
    assert generate(7, 50) != generate(8, 50)


def test_id_numbers_carry_the_county_prefix_a_valid_birth_date_and_the_check_digit(
    requests: list[intake_pb2.SubmitCaseRequest],
) -> None:
    ids = [(r.division_code, p.id_number) for r in requests for p in r.parties if p.id_number]
    assert len(ids) > 100
    for village, id_number in ids:
        assert len(id_number) == 18
        assert id_number[:6] == village[:6]
        born = dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
        assert dt.date(1950, 1, 1) <= born <= dt.date(2005, 12, 31)
        assert id_number[17] == id_check_digit(id_number[:17])


def test_phone_numbers_are_eleven_digit_mobiles(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    phones = [p.phone for r in requests for p in r.parties if p.phone]
    assert phones
    assert all(len(phone) == 11 and phone.startswith("1") and is_valid_phone(phone) for phone in phones)


def test_some_parties_have_no_id_number_or_no_phone(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    parties = [p for r in requests for p in r.parties]
    assert any(not p.id_number for p in parties)
    assert any(not p.phone for p in parties)


def test_each_case_has_one_to_three_named_parties_with_roles(
    requests: list[intake_pb2.SubmitCaseRequest],
) -> None:
    assert {len(r.parties) for r in requests} == {1, 2, 3}
    for request in requests:
        assert all(2 <= len(p.name) <= 3 and p.role for p in request.parties)


def test_categories_cover_at_least_ten_values(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    categories = Counter(r.category for r in requests)
    assert len(categories) >= 10
    assert set(categories) <= set(DEFAULT_CATEGORIES)
    assert categories["邻里"] > categories["征地拆迁"]
    assert categories["婚姻家庭"] > categories["医疗"]


def test_grid_reports_and_walk_ins_are_the_most_frequent_channels(
    requests: list[intake_pb2.SubmitCaseRequest],
) -> None:
    channels = Counter(r.channel for r in requests)
    assert set(channels) <= set(DEFAULT_CHANNELS)
    assert {name for name, _ in channels.most_common(2)} == {"网格员上报", "群众来访"}


def test_most_cases_are_routine_and_a_few_urgent(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    classes = Counter(r.response_class for r in requests)
    assert set(classes) == {case_pb2.RESPONSE_CLASS_ROUTINE, case_pb2.RESPONSE_CLASS_URGENT}
    assert 0 < classes[case_pb2.RESPONSE_CLASS_URGENT] < classes[case_pb2.RESPONSE_CLASS_ROUTINE] / 5


def test_client_request_ids_are_unique(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    ids = [r.client_request_id for r in requests]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("sim-") and len(i) == 20 for i in ids)


def test_cases_are_located_in_their_village_near_heze(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    for request in requests:
        village = TOPOLOGY.node(request.division_code).name.removesuffix("综治站")
        assert village in request.location.address
        assert abs(request.location.latitude - 35.2) <= 0.1
        assert abs(request.location.longitude - 115.4) <= 0.1
        assert request.grid.startswith("第") and request.grid.endswith("网格")
        assert request.reporter.startswith("网格员")


def test_descriptions_are_short_filled_in_chinese(requests: list[intake_pb2.SubmitCaseRequest]) -> None:
    for request in requests:
        assert 10 <= len(request.description) < 300
        assert "{" not in request.description
        assert request.parties[0].name in request.description


# run_simulator, against in-memory channels (no network).


class FakeChannel:
    """Stands in for a grpc.aio.Channel: fails the first calls with the given codes."""

    def __init__(self, failures: list[grpc.StatusCode], log: CallLog) -> None:
        self.failures = failures
        self.log = log
        self.calls: list[tuple[intake_pb2.SubmitCaseRequest, float | None]] = []
        self.closed = False

    def unary_unary(self, method: str, **_: Any) -> Any:
        return self._submit  # the simulator only calls SubmitCase

    async def _submit(self, request: intake_pb2.SubmitCaseRequest, **kwargs: Any) -> Any:
        self.calls.append((request, kwargs.get("timeout")))
        self.log.record()
        if self.failures:
            code = self.failures.pop(0)
            raise grpc.aio.AioRpcError(
                code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="测试故障", debug_error_string=""
            )
        return intake_pb2.SubmitCaseResponse()

    async def close(self, grace: float | None = None) -> None:
        self.closed = True


class CallLog:
    """Counts calls over all channels and tells when enough were made."""

    def __init__(self, enough: int) -> None:
        self.count = 0
        self.enough = enough
        self.reached = asyncio.Event()

    def record(self) -> None:
        self.count += 1
        if self.count >= self.enough:
            self.reached.set()


async def simulate(
    topology: Topology, failures: list[grpc.StatusCode], *, until_calls: int, rate: float = 500.0
) -> tuple[int, dict[str, FakeChannel]]:
    channels: dict[str, FakeChannel] = {}
    log = CallLog(until_calls)

    def channel_for(address: str) -> Any:
        channels[address] = FakeChannel(failures, log)
        return channels[address]

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(topology=topology, rate_per_s=rate, stop=stop, seed=1, channel_for=channel_for)
    )
    await asyncio.wait_for(log.reached.wait(), timeout=5.0)
    stop.set()
    accepted = await asyncio.wait_for(task, timeout=1.0)
    return accepted, channels


async def test_a_failed_call_is_retried_with_the_same_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "RETRY_PAUSE_S", 0.01)
    village = VILLAGES[0]
    single = Topology(name=TOPOLOGY.name, nodes=(*TOPOLOGY.ancestors(village), TOPOLOGY.node(village)))
    failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED]
    accepted, channels = await simulate(single, failures, until_calls=5)
    (channel,) = channels.values()
    sent = [request for request, _ in channel.calls]
    assert sent[0] == sent[1] == sent[2]
    assert sent[3].client_request_id != sent[2].client_request_id
    assert all(timeout == simulator.CALL_TIMEOUT_S for _, timeout in channel.calls)
    assert accepted == len(channel.calls) - 2
    assert channel.closed


async def test_a_request_refused_as_invalid_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "RETRY_PAUSE_S", 0.01)
    accepted, channels = await simulate(TOPOLOGY, [grpc.StatusCode.INVALID_ARGUMENT], until_calls=3)
    sent = [request.client_request_id for c in channels.values() for request, _ in c.calls]
    assert len(set(sent)) == len(sent)
    assert accepted == len(sent) - 1
    assert all(c.closed for c in channels.values())


async def test_the_simulator_uses_one_channel_per_village_and_stops_promptly() -> None:
    accepted, channels = await simulate(TOPOLOGY, [], until_calls=40, rate=2000.0)
    assert set(channels) <= {TOPOLOGY.node(code).grpc_address for code in VILLAGES}
    assert len(channels) == len(VILLAGES)
    assert accepted == sum(len(c.calls) for c in channels.values())


async def test_the_simulator_stops_while_waiting_for_the_next_arrival() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_simulator(topology=TOPOLOGY, rate_per_s=0.001, stop=stop, seed=1))
    await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(task, timeout=1.0) == 0
