"""Limits at the edge: every text field of every request has a maximum, refused at gRPC
(INVALID_ARGUMENT) and HTTP (400) with the field named, before anything is stored or published."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from fengqiao import limits, natsconfig, outbox
from fengqiao.divisions import events_stream
from fengqiao.errors import InvalidArgument
from fengqiao.grpcutil import channel
from fengqiao.v1 import (
    assessment_pb2,
    case_pb2,
    federation_pb2,
    intake_pb2,
    intake_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
)
from harness.county import LocalCounty, submit_request
from services.intake.config import IntakeSettings
from tests.gateway.test_dispatch_api import operator
from tests.system.test_county_sync import eventually

VILLAGE, TOWN = "371702101001", "371702101"
MODULES = (assessment_pb2, case_pb2, federation_pb2, intake_pb2, routing_pb2)
REPO = Path(__file__).resolve().parents[2]


def request_types() -> list[Descriptor]:
    return [m.input_type for mod in MODULES for s in mod.DESCRIPTOR.services_by_name.values() for m in s.methods]


def string_fields(message: Descriptor, seen: frozenset[str] = frozenset()) -> set[str]:
    names = set()
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            names.add(field.name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in seen:
            names |= string_fields(field.message_type, seen | {field.message_type.full_name})
    return names


def test_every_string_field_of_every_request_has_a_documented_kind() -> None:
    fields = set().union(*(string_fields(r) for r in request_types()))
    assert len(fields) > 50
    assert sorted(fields - set(limits.KINDS)) == []


def test_a_field_over_its_limit_is_refused_naming_the_field_and_the_limit() -> None:
    bounds = limits.Limits()
    limits.check(routing_pb2.SendDirectiveRequest(title="标" * 200, body="文" * 4000), bounds)
    with pytest.raises(InvalidArgument) as refused:
        limits.check(routing_pb2.SendDirectiveRequest(title="停水通知", body="文" * 4001), bounds)
    assert refused.value.message == "字段 body：不能超过 4000 字"
    nested = intake_pb2.ReportProgressRequest(step=case_pb2.Progress(note="进" * 4001))
    with pytest.raises(InvalidArgument, match=r"字段 step\.note：不能超过 4000 字"):
        limits.check(nested, bounds)
    party = intake_pb2.SubmitCaseRequest(parties=[case_pb2.Party(name="张" * 201)])
    with pytest.raises(InvalidArgument, match=r"字段 parties\.name：不能超过 200 字"):
        limits.check(party, bounds)


def test_repeated_fields_and_the_whole_request_are_bounded_and_attachment_bytes_are_not() -> None:
    bounds = limits.Limits(items=3, request_bytes=1024)
    with pytest.raises(InvalidArgument, match="字段 to_nodes：不能超过 3 项"):
        limits.check(routing_pb2.RaiseRiskAlertRequest(to_nodes=["a", "b", "c", "d"]), bounds)
    with pytest.raises(InvalidArgument, match="字段 request：请求中的文字合计不能超过 1 KB"):
        limits.check(routing_pb2.SendDirectiveRequest(title="标" * 200, body="文" * 300), bounds)
    limits.check(intake_pb2.PutAttachmentRequest(filename="a.jpg", content=b"\0" * 100_000), bounds)


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FQ_LIMIT_TEXT", "10")
    assert limits.Limits().of("body") == 10
    assert limits.Limits().of("no_such_field") == limits.Limits().default


def test_every_rendered_nats_server_config_sets_the_same_max_payload() -> None:
    configs = sorted((REPO / "deploy" / "rendered").rglob("nats-server*.conf"))
    assert configs
    for path in configs:
        assert f"max_payload: {limits.MAX_PAYLOAD}\n" in path.read_text(encoding="utf-8"), path
    assert natsconfig.helm_values.__module__  # the chart's values carry it too:
    assert f"max_payload: {limits.MAX_PAYLOAD}" in (REPO / "deploy/rendered/county-nats-values.yaml").read_text()


def largest(message: Descriptor, bounds: limits.Limits, *, items: int) -> object:
    """A request of type ``message`` with every text field at its limit (4-byte characters,
    the most UTF-8 can take) and ``items`` entries in each repeated field."""
    from google.protobuf import message_factory

    instance = message_factory.GetMessageClass(message)()

    def fill(target: object, descriptor: Descriptor, depth: int) -> None:
        for field in descriptor.fields:
            if field.type == FieldDescriptor.TYPE_STRING:
                text = "𠀀" * bounds.of(field.name)
                if field.is_repeated:
                    getattr(target, field.name).extend([text] * items)
                else:
                    setattr(target, field.name, text)
            elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < 3 and field.message_type.fields:
                if field.is_repeated:
                    for _ in range(items):
                        fill(getattr(target, field.name).add(), field.message_type, depth + 1)
                elif not field.containing_oneof:
                    fill(getattr(target, field.name), field.message_type, depth + 1)

    fill(instance, message, 0)
    return instance


def test_the_largest_valid_request_fits_under_max_payload_with_room_for_its_event() -> None:
    """What ``check`` lets through serialises to at most the text bound plus field overhead; an
    event carries one request's text and a small envelope, so it fits with margin."""
    bounds = limits.Limits()
    biggest = 0
    for request in request_types():
        candidate = largest(request, bounds, items=1)
        try:
            limits.check(candidate, bounds)  # type: ignore[arg-type]
        except InvalidArgument:
            continue  # over the whole-request bound: refused, so never an event
        biggest = max(biggest, candidate.ByteSize())  # type: ignore[attr-defined]
    assert biggest > 10_000
    # text is bounded by request_bytes; tags and lengths add a little per field
    assert biggest <= bounds.request_bytes + 16 * 1024
    assert bounds.request_bytes + 64 * 1024 <= limits.MAX_PAYLOAD // 2, "an event must fit with 2× margin"


async def _counts(local: LocalCounty, code: str) -> tuple[int, int]:
    node = local[code]
    assert node.ctx is not None
    pending = await node.ctx.db.run(outbox.pending_count)
    info = await node.ctx.js.stream_info(events_stream(code))
    return pending, info.state.messages


async def test_over_limit_steps_are_refused_over_http_and_grpc_and_nothing_is_stored_or_published(
    chain: LocalCounty,
) -> None:
    async with channel(chain[TOWN].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(TOWN))).case

    async def drained() -> bool:
        return (await _counts(chain, TOWN))[0] == 0

    await eventually(drained, within_s=10, what="the town's outbox drained")
    before = await _counts(chain, TOWN)
    long_text = "长" * 4001
    async with operator(chain, TOWN) as town:
        refusals = {
            "body": await town.post(
                "/api/v1/directives", json={"to_node": VILLAGE, "title": "停水通知", "body": long_text}
            ),
            "title": await town.post("/api/v1/directives", json={"to_node": VILLAGE, "title": "标" * 201}),
            "step.note": await town.post(f"/api/v1/cases/{case.id}/progress", json={"note": long_text}),
            "step.reason": await town.post(f"/api/v1/cases/{case.id}/return", json={"reason": "退" * 1001}),
            "text": await town.post("/api/v1/joint-cases/J-none/notes", json={"text": long_text}),
            "body ": await town.post("/api/v1/risk-alerts", json={"kind": "other", "title": "预警", "body": long_text}),
        }
        for field, reply in refusals.items():
            assert reply.status_code == 400, (field, reply.text)
            assert reply.json()["detail"].startswith(f"字段 {field.strip()}：不能超过 "), reply.json()
        assert (await town.get("/api/v1/directives", params={"direction": "out"})).json()["items"] == []

    async with channel(chain[TOWN].grpc_address) as ch:
        routing, intake = routing_pb2_grpc.RoutingStub(ch), intake_pb2_grpc.IntakeStub(ch)
        calls = [
            routing.SendDirective(routing_pb2.SendDirectiveRequest(to_node=VILLAGE, title="通知", body=long_text)),
            intake.ReportProgress(
                intake_pb2.ReportProgressRequest(case_id=case.id, actor="admin", step=case_pb2.Progress(note=long_text))
            ),
            intake.Return(
                intake_pb2.ReturnRequest(case_id=case.id, actor="admin", step=case_pb2.Returned(reason="退" * 1001))
            ),
            routing.AddJointNote(routing_pb2.AddJointNoteRequest(id="J-none", actor="admin", text=long_text)),
            routing.RaiseRiskAlert(routing_pb2.RaiseRiskAlertRequest(kind="other", title="预警", body=long_text)),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "不能超过" in (refused.value.details() or "")
        after = await intake.GetCase(intake_pb2.GetCaseRequest(id=case.id))
    assert after.version == case.version, "the refused steps must not touch the case"
    assert await _counts(chain, TOWN) == before, "nothing queued in the outbox nor published"


async def test_a_case_with_its_text_at_the_limits_makes_an_event_far_under_max_payload(village: LocalCounty) -> None:
    """Measured, not estimated: the event of a case with every text field at its limit (and the
    most parties intake takes) is the request's text and a small envelope, so any valid request's
    event fits with margin."""
    bounds = limits.Limits()
    wide = "𠀀"  # 4 bytes in UTF-8, the most a character takes
    party = case_pb2.Party(
        name=wide * bounds.name, id_number="37170219850312004X", phone="13812345678", role=wide * bounds.code
    )
    request = submit_request(
        VILLAGE,
        description=wide * bounds.text,
        reporter=wide * bounds.name,
        grid=wide * bounds.code,
        parties=[party] * IntakeSettings().max_parties,
        location=case_pb2.Location(address=wide * bounds.name),
    )
    limits.check(request, bounds)
    node = village[VILLAGE].ctx
    assert node is not None
    async with channel(village[VILLAGE].grpc_address) as ch:
        await intake_pb2_grpc.IntakeStub(ch).SubmitCase(request)

    async def published() -> bool:
        return (await _counts(village, VILLAGE)) == (0, 1)

    await eventually(published, within_s=10, what="the case's event published")
    event = await node.js.get_msg(events_stream(VILLAGE), 1)
    size = len(event.data or b"")
    assert request.ByteSize() // 2 < size <= request.ByteSize() * 2 + 4096, (size, request.ByteSize())
    largest_event = (bounds.request_bytes + 16 * 1024) * 2 + 4096  # by the same measure, for any request
    assert largest_event * 1.5 <= limits.MAX_PAYLOAD, "every valid request's event fits with margin"
