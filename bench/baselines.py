"""Baselines measured in the same run as the benchmarks: raw grpc.aio echo, raw JetStream publish."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import nats
from nats.js import api as js_api

from bench import load
from bench.echo_server import METHOD
from bench.procs import server_process
from fengqiao.grpcutil import channel
from fengqiao.natsserver import NatsServer

log = logging.getLogger(__name__)

GRPC_ECHO = "raw grpc.aio echo"
JETSTREAM_PUBLISH = "raw JetStream publish"
STREAM, SUBJECT = "BENCH", "bench.publish"


async def grpc_echo(
    *, make_payload: Callable[[], bytes], concurrency: int, seconds: float, warmup_s: float
) -> load.Load:
    """Unary echo calls/s against ``bench.echo_server`` in another process.

    The client goes through ``fengqiao.grpcutil.channel`` like the benchmarks do, and builds a
    fresh payload per call with ``make_payload``.
    """
    async with server_process("bench.echo_server", "--port", "0") as info:
        async with channel(f"127.0.0.1:{info['port']}") as ch:
            echo = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            await echo(make_payload(), wait_for_ready=True)

            async def call() -> None:
                await echo(make_payload())

            result = await load.for_duration(call, concurrency=concurrency, seconds=seconds, warmup_s=warmup_s)
    log.info("%s: %.1f calls/s (%d errors)", GRPC_ECHO, result.rate, result.errors)
    return result


async def jetstream_publish(*, payload_size: int, concurrency: int, count: int) -> load.Load:
    """Acknowledged ``js.publish`` calls/s to a file-backed stream on a fresh nats-server."""
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-js-"))
    server = await asyncio.to_thread(NatsServer(store_dir=workdir / "nats").start)
    try:
        nc = await nats.connect(server.url, name="fq-bench-publish")
        try:
            js = nc.jetstream()
            await js.add_stream(js_api.StreamConfig(name=STREAM, subjects=["bench.>"], storage=js_api.StorageType.FILE))
            payload = b"x" * payload_size
            warmup = min(count, 100)
            for _ in range(warmup):
                await js.publish(SUBJECT, payload)

            async def call() -> None:
                await js.publish(SUBJECT, payload)

            result = await load.for_count(call, concurrency=concurrency, count=count)
            held = (await js.stream_info(STREAM)).state.messages
            if held != warmup + result.completed:
                raise RuntimeError(f"stream holds {held} messages, expected {warmup + result.completed}")
        finally:
            await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("%s: %.1f msgs/s (%d errors)", JETSTREAM_PUBLISH, result.rate, result.errors)
    return result
