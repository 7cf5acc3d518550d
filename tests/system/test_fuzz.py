"""Bad input everywhere (issue 10): random requests to every gRPC method get a clear status, never
an internal error; random messages on the bus become dead letters with a reason, and the valid
case sent after them still arrives. (The HTTP API is fuzzed by schemathesis, tests/gateway.)"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import nats
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from devtools.natsserver import NatsServer
from fengqiao.divisions import case_subject, down_subject, event_subject
from fengqiao.grpcutil import channel
from fengqiao.models import DeadLetter
from fengqiao.v1 import (
    assessment_pb2,
    assessment_pb2_grpc,
    federation_pb2,
    federation_pb2_grpc,
    intake_pb2,
    intake_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
)
from harness.county import LocalCounty, submit_request
from tests.system.test_county_sync import eventually, has_case

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"
SERVICES = [
    (intake_pb2, intake_pb2_grpc.IntakeStub, "Intake"),
    (routing_pb2, routing_pb2_grpc.RoutingStub, "Routing"),
    (assessment_pb2, assessment_pb2_grpc.AssessmentStub, "Assessment"),
    (federation_pb2, federation_pb2_grpc.FederationStub, "Federation"),
]
# Statuses a caller can act on; UNKNOWN or INTERNAL would be a crash behind the method.
CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
}
CODES = st.sampled_from(["", VILLAGE, TOWN, COUNTY, "371702102001", "12345", "37170210100x"])
TEXT = st.one_of(CODES, st.text(max_size=12), st.sampled_from(["邻里", "征地拆迁", "2026-11", "2026Q4", "T1"]))
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: TEXT,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=False, allow_infinity=False, width=32),
    FieldDescriptor.TYPE_FLOAT: st.floats(allow_nan=False, allow_infinity=False, width=32),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**40), 2**40),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**40),
}


def fields_of(descriptor: Descriptor, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Random values for some of a message's fields (nested messages to ``depth``)."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth <= 0 or (
                field.message_type.full_name.startswith("google.protobuf.") and field.message_type.name != "Timestamp"
            ):
                continue
            value: st.SearchStrategy[Any] = (
                st.builds(lambda s: {"seconds": s}, st.integers(0, 4_000_000_000))
                if field.message_type.name == "Timestamp"
                else fields_of(field.message_type, depth - 1)
            )
        elif field.type == FieldDescriptor.TYPE_ENUM:
            value = st.sampled_from([v.number for v in field.enum_type.values] + [99])
        else:
            value = _SCALARS[field.type]
        is_repeated = field.is_repeated
        parts[field.name] = st.lists(value, max_size=3) if is_repeated else value
    return st.fixed_dictionaries({}, optional=parts)


def build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for item in items:
                target = getattr(message, name).add() if field.is_repeated else getattr(message, name)
                target.CopyFrom(build(type(target), item))
        elif field.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    return message


def calls() -> st.SearchStrategy[tuple[str, str, Message]]:
    """(service, method, random request) over every method of every service."""
    options = []
    for module, _stub, service in SERVICES:
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            cls = getattr(module, method.input_type.name, None)
            if cls is None:  # the input type lives in another module (shared messages)
                from google.protobuf import symbol_database

                cls = symbol_database.Default().GetSymbol(method.input_type.full_name)
            options.append(
                fields_of(method.input_type, 2).map(lambda v, s=service, m=method.name, c=cls: (s, m, build(c, v)))
            )
    return st.one_of(options)


async def test_random_requests_to_every_grpc_method_get_a_clear_status(chain: LocalCounty) -> None:
    stubs: dict[str, Any] = {}
    async with channel(chain[TOWN].grpc_address, timeout_s=10) as ch:
        for _module, stub, service in SERVICES:
            stubs[service] = stub(ch)
        seen: list[tuple[str, grpc.StatusCode | None]] = []

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(call=calls())
        def fuzz(call: tuple[str, str, Message]) -> None:
            service, method, request = call
            future = asyncio.run_coroutine_threadsafe(_call(stubs[service], method, request), loop)
            code = future.result(timeout=30)
            seen.append((method, code))
            assert code is None or code in CLEAR, f"{service}.{method} answered {code} to {request}"

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(fuzz)
    assert len({m for m, _ in seen}) > 30  # most methods were reached
    # the town still works after all that
    async with channel(chain[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
    await eventually(
        lambda: has_case(chain[TOWN].grpc_address, case.id), within_s=10, what="a valid case after the fuzzing"
    )


async def _call(stub: Any, method: str, request: Message) -> grpc.StatusCode | None:
    try:
        await getattr(stub, method)(request)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return None


BAD_PAYLOADS = st.one_of(
    st.binary(max_size=200),
    st.just(b""),  # parses as an empty message of any type
    st.just(b"\x0a\x02id"),  # a message with only an id
)


@settings(max_examples=2, deadline=None, database=None)
@given(payloads=st.lists(BAD_PAYLOADS, min_size=4, max_size=4).map(lambda p: [b"", b"\x0a\x02id", *p]))
def test_bad_messages_on_every_consumed_subject_become_dead_letters_and_nothing_valid_is_lost(
    payloads: list[bytes],
) -> None:
    """One run with hypothesis-chosen payloads (each run starts its own county)."""
    asyncio.run(_bus_fuzz(payloads))


async def _bus_fuzz(payloads: list[bytes]) -> None:
    import tempfile
    from pathlib import Path

    from tests.conftest import running_county

    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(store_dir=Path(tmp) / "nats").start()
        try:
            urls = lambda code: f"sqlite:///{Path(tmp) / f'{code}.db'}"  # noqa: E731
            async with running_county(Path(tmp), server.url, urls, towns=1, villages=1) as local:
                subjects = [
                    case_subject(VILLAGE, "received"),  # the town's subtree sync
                    case_subject(VILLAGE, "escalation_requested"),  # the town's escalations
                    event_subject(VILLAGE, "directive", "acknowledged"),  # directive answers
                    event_subject(TOWN, "project", "registered"),  # the county's 四必评 sync
                    event_subject(TOWN, "joint", "opened"),  # the county's joint-case hub
                    down_subject(COUNTY, TOWN, "directive", "issued"),  # the town's directives
                    down_subject(TOWN, VILLAGE, "case", "escalation_accepted"),  # the village's downward sync
                    down_subject(COUNTY, TOWN, "account", "created"),  # the town's accounts from above
                ]
                nc = await nats.connect(server.url)
                js = nc.jetstream()
                sent = []  # every payload on every consumed subject
                for n, payload in enumerate(payloads):
                    for m, subject in enumerate(subjects):
                        await js.publish(subject, payload, headers={"Nats-Msg-Id": f"fuzz-{n}-{m}"})
                        sent.append((subject, payload))
                await nc.close()
                async with channel(local[VILLAGE].grpc_address) as ch:
                    case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
                await eventually(
                    lambda: has_case(local[COUNTY].grpc_address, case.id),
                    within_s=15,
                    what="the valid case after the bad ones",
                )

                async def all_dead() -> bool:
                    letters = {(subject, data) for subject, data, _ in await _letters(local)}
                    return all(item in letters for item in sent)

                await eventually(all_dead, within_s=15, what="a dead letter for every bad message")
                letters = await _letters(local)
                assert all(reason.strip() and not reason.startswith("处理失败") for _, _, reason in letters), letters
        finally:
            server.stop()


async def _letters(local: LocalCounty) -> list[tuple[str, bytes, str]]:
    """(subject, data, reason) of every dead letter at every node."""
    found: list[tuple[str, bytes, str]] = []
    for code in (VILLAGE, TOWN, COUNTY):
        db = local[code].ctx.db  # type: ignore[union-attr]
        rows = await db.read(lambda s: list(s.exec(select(DeadLetter)).all()))
        found += [(r.subject, bytes(r.data), r.reason) for r in rows]
    return found
