"""Log lines: JSON objects with the node, the service and the active span's ids, or the text
format people read (``FQ_LOG_FORMAT=text``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from fengqiao import logs


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logs.configure(fmt="json", level="INFO", node="371702101001", stream=stream)
    try:
        yield stream, handler
    finally:
        logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_names_its_node_service_and_time_and_keeps_extra_fields(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = captured
    logging.getLogger("services.intake.handlers").info("受理 %s", "371702101001-20261122-0001", extra={"n": 3})
    (line,) = lines(stream)
    assert line["message"] == "受理 371702101001-20261122-0001"
    assert line["level"] == "INFO" and line["node"] == "371702101001" and line["service"] == "intake"
    assert line["logger"] == "services.intake.handlers" and line["n"] == 3
    assert str(line["time"]).endswith("+00:00") and "T" in str(line["time"])
    assert "trace_id" not in line and "span_id" not in line  # no span is active


def test_a_line_written_inside_a_span_carries_its_trace_and_span_ids(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = captured
    with trace.get_tracer("test").start_as_current_span("work") as span:
        logging.getLogger("gateway.access").info("GET /healthz 200")
    (line,) = lines(stream)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x") and line["span_id"] == format(context.span_id, "016x")
    assert line["service"] == "gateway"


def test_the_text_format_is_the_human_one() -> None:
    stream = io.StringIO()
    handler = logs.configure(fmt="text", stream=stream)
    try:
        logging.getLogger("host.node").warning("节点 %s 停止", "371702")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().rstrip().endswith(" WARNING host.node: 节点 371702 停止")


def test_configure_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    first = logs.configure(fmt="text", stream=io.StringIO())
    second = logs.configure(fmt="json", stream=io.StringIO())
    try:
        assert first not in root.handlers and second in root.handlers
    finally:
        root.removeHandler(second)


@pytest.mark.parametrize(
    ("name", "service"),
    [("services.routing.escalations", "routing"), ("gateway.open311.routes", "gateway"), ("fengqiao.inbox", "node"),
     ("host.node", "node"), ("nats.aio.client", "node")],
)  # fmt: skip
def test_a_logger_belongs_to_its_service(name: str, service: str) -> None:
    assert logs.service_of(name) == service
