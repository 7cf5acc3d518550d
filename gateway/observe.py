"""Every HTTP request, seen from outside: its duration in the node's metrics (by method, route
template and status) and one access log line, written inside the request's trace span."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fengqiao.metrics import NodeMetrics

log = logging.getLogger("gateway.access")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
QUIET = ("/healthz",)  # probes: timed, not logged


class RequestObserver:
    """ASGI middleware; the route is the matched template (``/api/v1/cases/{case_id}``), so
    the metric's labels stay few whatever the paths asked for."""

    def __init__(self, app: ASGIApp, *, metrics: NodeMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "(other)"
            method = str(scope["method"])
            if self.metrics is not None:
                self.metrics.observe_http(method, route, status, seconds)
            if scope["path"] not in QUIET:
                log.info(
                    "%s %s %d %.1f ms",
                    method,
                    scope["path"],
                    status,
                    seconds * 1000,
                    extra={"http_method": method, "http_route": route, "http_status": status,
                           "duration_ms": round(seconds * 1000, 1)},
                )  # fmt: skip
