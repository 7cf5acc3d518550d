"""Calls that outlast chaos: gRPC stubs per node over cached channels, and retries of the
errors a killed process or a cut link gives (the caller decides what a retry may repeat)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from fengqiao.grpcutil import channel
from fengqiao.v1 import assessment_pb2_grpc, federation_pb2_grpc, intake_pb2_grpc, routing_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,  # the node's process is down or restarting
        grpc.StatusCode.DEADLINE_EXCEEDED,  # it did not answer in time: the outcome is unknown
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,  # a process killed mid-call
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class GaveUp(Exception):
    """A call still failed transiently when its time ran out."""


class Nodes:
    """Stubs of every node's services, one channel per node, by division code."""

    def __init__(self, addresses: dict[str, str], *, timeout_s: float = 5.0) -> None:
        self._addresses = addresses
        self._timeout_s = timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, code: str) -> grpc.aio.Channel:
        if code not in self._channels:
            address = self._addresses[code]
            self._channels[code] = channel(address, timeout_s=self._timeout_s, max_reconnect_backoff_s=1.0)
        return self._channels[code]

    def intake(self, code: str) -> intake_pb2_grpc.IntakeAsyncStub:
        return intake_pb2_grpc.IntakeStub(self._channel(code))

    def routing(self, code: str) -> routing_pb2_grpc.RoutingAsyncStub:
        return routing_pb2_grpc.RoutingStub(self._channel(code))

    def assessment(self, code: str) -> assessment_pb2_grpc.AssessmentAsyncStub:
        return assessment_pb2_grpc.AssessmentStub(self._channel(code))

    def federation(self, code: str) -> federation_pb2_grpc.FederationAsyncStub:
        return federation_pb2_grpc.FederationStub(self._channel(code))

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()


async def persist(call: Callable[[], Awaitable[T]], *, what: str, within_s: float = 120.0) -> T:
    """``call()`` until it succeeds or fails with a non-transient status (raised as is);
    transient failures are retried with a growing pause for up to ``within_s``, then
    ``GaveUp``. Only pass calls that are safe to repeat, or re-read state before repeating."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pause = 0.05
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in TRANSIENT:
                raise
            if loop.time() + pause > deadline:
                raise GaveUp(f"{what}: {exc.code().name} {exc.details()}") from exc
            log.debug("%s: %s %s, retrying", what, exc.code().name, exc.details())
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)
