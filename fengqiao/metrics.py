"""Prometheus metrics of a node, served in the text format on their own port (``/metrics``).

One registry per node (a test runs several nodes in one process). Counters are incremented
where things happen (the outbox relay, the inbox consumers); request durations are observed by
the gRPC interceptor here and the gateway's HTTP middleware; gauges are read when Prometheus
scrapes, from the node's database and the services' own state (``Reading``s, which keep
prometheus-client out of the services). Every sample carries the node's code as ``node``.
See docs/ARCHITECTURE.md, *Operations*.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fengqiao.errors import Unavailable

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 5.0
# Sub-millisecond reads up to multi-second reports and exports.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclasses.dataclass(frozen=True)
class Reading:
    """A gauge read at scrape time: its name, help and ``(labels, value)`` samples (the node
    label is added here)."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]]


Gauges = Callable[[], Awaitable[list[Reading]]]
"""Reads a group of gauges on the node's event loop when Prometheus scrapes."""


class NodeMetrics:
    """The metrics of one node and the HTTP endpoint that serves them."""

    def __init__(self, node_code: str) -> None:
        self.node = node_code
        self.registry = CollectorRegistry()
        self.outbox_published = Counter(
            "fengqiao_outbox_published",
            "Outbox messages JetStream acknowledged (published upward or down)",
            ["node"],
            registry=self.registry,
        ).labels(node_code)
        self._inbox_applied = Counter(
            "fengqiao_inbox_applied",
            "Messages an inbox consumer applied (or recognised as already applied)",
            ["node", "consumer"],
            registry=self.registry,
        )
        self._grpc_seconds = Histogram(
            "fengqiao_grpc_request_duration_seconds",
            "Time to answer a unary gRPC call, by method and status code",
            ["node", "method", "code"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._http_seconds = Histogram(
            "fengqiao_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status code",
            ["node", "method", "route", "code"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._gauges = _ScrapeCollector(node_code)
        self.registry.register(self._gauges)
        self._server: Any = None
        self.host = ""
        self.port = 0

    def inbox_applied(self, consumer: str) -> Callable[[int], None]:
        """The counter of one consumer's applied messages, as a function of how many."""
        child = self._inbox_applied.labels(self.node, consumer)
        return child.inc

    def observe_grpc(self, method: str, code: str, seconds: float) -> None:
        self._grpc_seconds.labels(self.node, method, code).observe(seconds)

    def observe_http(self, method: str, route: str, code: int, seconds: float) -> None:
        self._http_seconds.labels(self.node, method, route, str(code)).observe(seconds)

    def add_gauges(self, gauges: Gauges) -> None:
        """Read ``gauges`` at every scrape."""
        self._gauges.groups.append(gauges)

    def grpc_interceptor(self) -> grpc.aio.ServerInterceptor:
        """A server interceptor timing every unary call into this node's histogram."""
        return _GrpcTimer(self)

    def start(self, host: str, port: int, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``/metrics`` on ``host:port`` (0: any free port) from a thread; gauges are read
        on ``loop``, the node's event loop."""
        self._gauges.loop = loop
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise Unavailable(f"监控指标端口 {host}:{port} 已被占用或无法绑定：{exc.strerror}") from exc
        self.host, self.port = host, int(self._server.server_port)
        log.info("metrics of %s at %s", self.node, self.local_url)

    @property
    def local_url(self) -> str:
        """Where this process serves its metrics, as reachable from the same host."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        server, self._server = self._server, None
        self._gauges.loop = None
        if server is not None:
            server.shutdown()
            server.server_close()


class _ScrapeCollector(Collector):
    """Reads every gauge group on the node's loop when Prometheus scrapes (from its thread)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.groups: list[Gauges] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # read only at scrape time, never at registration

    def collect(self) -> Iterator[Metric]:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            readings = asyncio.run_coroutine_threadsafe(self._read(), loop).result(SCRAPE_TIMEOUT_S)
        except Exception as exc:  # the node is stopping, or its loop is stuck
            log.warning("metrics of %s not read: %r", self.node, exc)
            return
        for reading in readings:
            family = GaugeMetricFamily(reading.name, reading.help, labels=["node", *_label_names(reading)])
            for labels, value in reading.samples:
                family.add_metric([self.node, *labels.values()], value)
            yield family

    async def _read(self) -> list[Reading]:
        results = await asyncio.gather(*(group() for group in self.groups), return_exceptions=True)
        readings: list[Reading] = []
        for result in results:
            if isinstance(result, BaseException):
                log.warning("metrics of %s: a gauge group failed: %r", self.node, result)
                continue
            readings.extend(result)
        return readings


def _label_names(reading: Reading) -> list[str]:
    return list(reading.samples[0][0]) if reading.samples else []


class _GrpcTimer(grpc.aio.ServerInterceptor):
    """Times unary-unary calls by method and final status code (streams pass untimed)."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        behavior = handler.unary_unary
        observe = self._metrics.observe_grpc

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await behavior(request, context)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception:
                code = "UNKNOWN"  # unless the method aborted with a status (below)
                raise
            finally:
                status = context.code()
                if isinstance(status, grpc.StatusCode) and code != "CANCELLED":
                    code = status.name
                observe(method, code, time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
