"""One trace follows a case from intake at the village to the county (OpenTelemetry)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fengqiao import logs
from fengqiao.grpcutil import channel
from fengqiao.v1 import intake_pb2_grpc
from harness.county import LocalCounty, submit_request
from tests.system.test_county_sync import COUNTY, TOWN, VILLAGE, eventually, has_case


async def test_one_trace_follows_a_case_from_village_intake_to_the_county(
    county: LocalCounty, spans: InMemorySpanExporter
) -> None:
    async with channel(county[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
    await eventually(lambda: has_case(county[COUNTY].grpc_address, case.id), within_s=5, what="case at county")

    wanted = {f"FQ_EVENTS_{TOWN}/fq-subtree-sync", f"FQ_EVENTS_{COUNTY}/fq-subtree-sync"}

    def consumer_groups() -> set[str]:
        return {
            str((s.attributes or {}).get("messaging.consumer.group.name"))
            for s in spans.get_finished_spans()
            if s.kind == SpanKind.CONSUMER
        }

    async def both_consumed() -> bool:  # the county may store it before the town's span has ended
        return wanted <= consumer_groups()

    await eventually(both_consumed, within_s=5, what="the town's and the county's consumer spans")
    finished = spans.get_finished_spans()
    intake = [s for s in finished if s.name.endswith("Intake/SubmitCase") and s.kind == SpanKind.SERVER]
    assert len(intake) == 1
    trace_id = intake[0].context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]

    publishes = [s for s in in_trace if s.kind == SpanKind.PRODUCER]
    consumers = {
        str((s.attributes or {}).get("messaging.consumer.group.name")) for s in in_trace if s.kind == SpanKind.CONSUMER
    }
    assert publishes and publishes[0].name == f"publish fq.371702.{TOWN}.{VILLAGE}.case.received"
    assert f"FQ_EVENTS_{TOWN}/fq-subtree-sync" in consumers
    assert f"FQ_EVENTS_{COUNTY}/fq-subtree-sync" in consumers
    assert any(s.name in ("connect", "INSERT", "SELECT") or "INSERT" in s.name for s in in_trace), (
        "database work is traced"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_requests_log_line_carries_the_trace_id_of_its_span(
    village: LocalCounty, spans: InMemorySpanExporter
) -> None:
    stream = io.StringIO()
    handler = logs.configure(fmt="json", level="INFO", node=VILLAGE, stream=stream)

    def access_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        return [line for line in lines if str(line["message"]).startswith("GET /open311/v2/services.json ")]

    async def logged() -> bool:  # written once the answer has gone out
        return bool(access_lines())

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{village[VILLAGE].http_port}") as client:
            reply = await client.get("/open311/v2/services.json", params={"jurisdiction_id": VILLAGE})
        assert reply.status_code == 200
        await eventually(logged, within_s=5, what="the request's access log line")
    finally:
        logging.getLogger().removeHandler(handler)
    (access,) = access_lines()
    assert access["node"] == VILLAGE and access["service"] == "gateway" and access["level"] == "INFO"
    assert access["http_status"] == 200 and access["http_route"].startswith("/open311/v2/services.")
    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER and "services" in s.name]
    assert access["trace_id"] == format(server.context.trace_id, "032x")
    assert access["span_id"] == format(server.context.span_id, "016x")
