"""gRPC plumbing shared by every service: the server with health and reflection, client
channels with default deadlines and tracing, and the one mapping of errors to status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from sqlalchemy.exc import DataError

from fengqiao import errors, limits, telemetry
from fengqiao.errors import InvalidArgument
from fengqiao.v1 import common_pb2

log = logging.getLogger(__name__)
MAX_MESSAGE = 16 * 1024 * 1024  # attachments of up to 10 MiB travel as one message


def status_for(exc: errors.FengqiaoError) -> grpc.StatusCode:
    """The gRPC status of a domain error, from the one table ``errors.EDGE``."""
    return errors.status_of(type(exc)).grpc


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def grpc_method(fn: Method[Req, Resp]) -> Method[Req, Resp]:
    """Map the domain errors a servicer method raises to gRPC status codes."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await fn(self, request, context)
        except errors.FengqiaoError as exc:
            await context.abort(status_for(exc), exc.message)
            raise  # unreachable: abort raises
        except DataError as exc:  # e.g. a NUL byte, which PostgreSQL text cannot hold
            log.info("%s: data the database refuses: %s", fn.__name__, exc.orig)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "请求中含有无法保存的字符（如 NUL 字节）")
            raise  # unreachable: abort raises

    return wrapper


class LimitsInterceptor(grpc.aio.ServerInterceptor):
    """Refuses (INVALID_ARGUMENT) a request whose text is over ``limits`` before its handler runs:
    installed by ``start_server`` on every server, so no handler can forget the check."""

    def __init__(self, limits_: limits.Limits) -> None:
        self._limits = limits_

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:  # every method of the services is unary
            return handler
        inner = handler.unary_unary
        bounds = self._limits

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                limits.check(request, bounds)
            except InvalidArgument as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            return await inner(request, context)  # type: ignore[arg-type]

        return grpc.unary_unary_rpc_method_handler(
            checked, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


class Registration:
    """A servicer and how to add it to a server."""

    def __init__(self, name: str, add: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        self.name = name
        self.add = add
        self.servicer = servicer


async def start_server(
    registrations: Sequence[Registration],
    *,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    text_limits: limits.Limits | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start a traced gRPC server with health checking and reflection — over TLS when given
    ``credentials`` — that refuses requests over ``text_limits`` (by default ``FQ_LIMIT_*``), and
    return it and its port."""
    bounds = LimitsInterceptor(text_limits if text_limits is not None else limits.Limits())
    interceptors = [*([aio_server_interceptor()] if telemetry.enabled() else []), *interceptors, bounds]
    # No SO_REUSEPORT (gRPC's default): a second process of the same node must fail to bind,
    # not silently share the port and answer half the calls from another store.
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(interceptors=interceptors, options=options)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for reg in registrations:
        reg.add(reg.servicer, server)
    names = [reg.name for reg in registrations]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    address = f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio raises where older versions returned 0
        bound = 0
    if bound == 0:
        raise errors.Unavailable(f"gRPC 端口 {host}:{port} 无法绑定（可能已被占用）")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound


class _DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, timeout_s: float) -> None:
        self._timeout = timeout_s

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.timeout is None:
            details = grpc.aio.ClientCallDetails(
                details.method, self._timeout, details.metadata, details.credentials, details.wait_for_ready
            )
        return await continuation(details, request)


def channel(
    address: str,
    *,
    timeout_s: float = 5.0,
    credentials: grpc.ChannelCredentials | None = None,
    max_reconnect_backoff_s: float | None = None,
) -> grpc.aio.Channel:
    """A traced client channel — over mTLS when given ``credentials`` — whose calls get
    ``timeout_s`` unless they set a deadline. gRPC waits ever longer (up to two minutes)
    between attempts to reach a server that is down; ``max_reconnect_backoff_s`` caps that,
    for clients that must notice a restarted server at once."""
    tracing = list(aio_client_interceptors()) if telemetry.enabled() else []
    interceptors = [_DefaultDeadline(timeout_s), *tracing]
    options: list[tuple[str, int]] = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    if max_reconnect_backoff_s is not None:
        backoff_ms = int(max_reconnect_backoff_s * 1000)
        options += [
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
            ("grpc.initial_reconnect_backoff_ms", min(backoff_ms, 200)),
        ]
    if credentials is None:
        return grpc.aio.insecure_channel(address, interceptors=interceptors, options=options)
    return grpc.aio.secure_channel(address, credentials, interceptors=interceptors, options=options)


def page_bounds(page: common_pb2.PageRequest, *, default: int = 50, most: int = 500) -> tuple[int, int]:
    """The offset and size an offset-paged request asks for (the page token is the offset)."""
    try:
        offset = int(page.page_token or 0)
    except ValueError as exc:
        raise InvalidArgument("page_token", "分页标记无效") from exc
    if offset < 0:
        raise InvalidArgument("page_token", "分页标记无效")
    return offset, max(1, min(page.page_size or default, most))
