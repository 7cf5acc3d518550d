"""Log lines for a county's log collector (one JSON object a line) or for people (text).

Each JSON line has ``time``, ``level``, ``node``, ``service`` (intake, routing, assessment,
federation, gateway, or node for the host and the shared library), ``logger``, ``message``, any
``extra`` fields, and ``trace_id``/``span_id`` while a span is active (OpenTelemetry), so a log
line leads to its trace. Only the entry point (``host/cli.py``) calls ``configure``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_fengqiao_handler"


def service_of(logger_name: str) -> str:
    """The part of the node a logger belongs to: a service's name, ``gateway``, or ``node``."""
    parts = logger_name.split(".")
    if parts[0] == "services" and len(parts) > 1:
        return parts[1]
    if parts[0] == "gateway":
        return "gateway"
    return "node"


class LogContext(logging.Filter):
    """Stamps each record with the node, the service and the active span's ids."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        record.service = service_of(record.name)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class _Json(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of a log format: ``json`` or ``text``."""
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    if fmt != "json":
        raise ValueError(f"unknown log format: {fmt}")
    return _Json(
        "%(asctime)s %(levelname)s %(node)s %(service)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def configure(
    *, fmt: str = "json", level: str | int = "INFO", node: str = "", stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``fmt``, replacing what an earlier call
    set; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(LogContext(node))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
