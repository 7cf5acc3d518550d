"""Intake over real gRPC: idempotent retries, clear refusals, health and reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2, common_pb2, intake_pb2, intake_pb2_grpc
from harness.county import LocalCounty, submit_request

VILLAGE = "371702101001"


async def count_cases(address: str) -> int:
    async with channel(address) as ch:
        reply = await intake_pb2_grpc.IntakeStub(ch).ListCases(intake_pb2.ListCasesRequest())
    return len(reply.cases)


async def test_retrying_submit_with_the_same_request_id_gives_one_case_and_the_same_answer(
    village: LocalCounty,
) -> None:
    request = submit_request(VILLAGE)
    async with channel(village[VILLAGE].grpc_address) as ch:
        stub = intake_pb2_grpc.IntakeStub(ch)
        first = await stub.SubmitCase(request)
        second = await stub.SubmitCase(request)
    assert not first.duplicate and second.duplicate
    assert second.case == first.case
    assert await count_cases(village[VILLAGE].grpc_address) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": ""}, "category"),
        ({"division_code": "371702109009"}, "division_code"),
        ({"description": "纠纷" * 2001}, "description"),  # over FQ_LIMIT_TEXT (4000)
        ({"parties": [case_pb2.Party(name="张三", phone="1381234")]}, "parties[0].phone"),
        ({"parties": [case_pb2.Party(name="张三", id_number="371702198503120041")]}, "parties[0].id_number"),
    ],
)
async def test_bad_input_is_refused_with_invalid_argument_naming_the_field_and_nothing_is_stored(
    village: LocalCounty, fields: dict[str, object], field: str
) -> None:
    base = submit_request(VILLAGE)
    request = intake_pb2.SubmitCaseRequest()
    request.CopyFrom(base)
    for name, value in fields.items():
        request.ClearField(name)  # type: ignore[arg-type]
        if isinstance(value, list):
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    async with channel(village[VILLAGE].grpc_address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake_pb2_grpc.IntakeStub(ch).SubmitCase(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert field in details and "字段" in details
    assert await count_cases(village[VILLAGE].grpc_address) == 0


async def test_unknown_case_is_not_found_in_chinese(village: LocalCounty) -> None:
    async with channel(village[VILLAGE].grpc_address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake_pb2_grpc.IntakeStub(ch).GetCase(intake_pb2.GetCaseRequest(id="no-such-case"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "不存在" in (caught.value.details() or "")


async def test_a_step_at_a_stale_version_is_refused_with_the_reason_and_the_current_one_goes_through(
    village: LocalCounty,
) -> None:
    async with channel(village[VILLAGE].grpc_address) as ch:
        stub = intake_pb2_grpc.IntakeStub(ch)
        case = (await stub.SubmitCase(submit_request(VILLAGE))).case
        triage = case_pb2.Triaged(category="邻里", response_class=case_pb2.RESPONSE_CLASS_ROUTINE)
        case = await stub.Triage(
            intake_pb2.TriageRequest(case_id=case.id, actor="值班员", expected_version=1, step=triage)
        )
        assert case.version == 2
        assign = case_pb2.Assigned(slip=case_pb2.AssignmentSlip(department="调委会", requirement="调解"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Assign(
                intake_pb2.AssignRequest(case_id=case.id, actor="值班员", expected_version=1, step=assign)
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert caught.value.details() == "案件已被他人更新（当前版本 2，请求版本 1），请刷新后重试"
        events = await stub.ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=case.id))
        assert len(events.events) == 2 and (await stub.GetCase(intake_pb2.GetCaseRequest(id=case.id))) == case
        assigned = await stub.Assign(
            intake_pb2.AssignRequest(case_id=case.id, actor="值班员", expected_version=2, step=assign)
        )
    assert assigned.version == 3 and assigned.assignment.department == "调委会"


async def test_list_cases_pages_through_every_case_once(village: LocalCounty) -> None:
    async with channel(village[VILLAGE].grpc_address) as ch:
        stub = intake_pb2_grpc.IntakeStub(ch)
        submitted = {(await stub.SubmitCase(submit_request(VILLAGE))).case.id for _ in range(7)}
        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListCases(
                intake_pb2.ListCasesRequest(page=common_pb2.PageRequest(page_size=3, page_token=token))
            )
            seen.extend(c.id for c in page.cases)
            token = page.page.next_page_token
            if not token:
                break
    assert len(seen) == 7 and set(seen) == submitted


async def test_every_server_answers_health_checks_and_reflection(village: LocalCounty) -> None:
    async with channel(village[VILLAGE].grpc_address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "fengqiao.v1.Intake", "fengqiao.v1.Federation", "fengqiao.v1.Routing"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo()
        await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        response = await stream.read()
        await stream.done_writing()
    names = {s.name for s in response.list_services_response.service}
    assert {
        "fengqiao.v1.Intake",
        "fengqiao.v1.Routing",
        "fengqiao.v1.Assessment",
        "fengqiao.v1.Federation",
    } <= names
