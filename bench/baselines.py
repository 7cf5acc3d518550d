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
from devtools.natsserver import NatsServer
from fengqiao.grpcutil import channel

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


SOURCED_HOP = "raw JetStream sourced hop"


async def sourced_hop_latencies(*, payload_size: int, rate: float, count: int) -> list[float]:
    """Seconds from an acked publish into one stream until a pull consumer on a second stream,
    which sources the first, receives it — the raw path an escalation takes — at ``rate``/s."""
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-hop-"))
    server = await asyncio.to_thread(NatsServer(store_dir=workdir / "nats").start)
    try:
        nc = await nats.connect(server.url, name="fq-bench-hop")
        try:
            js = nc.jetstream()
            await js.add_stream(
                js_api.StreamConfig(name="HOP_LOW", subjects=["low.>"], storage=js_api.StorageType.FILE)
            )
            await js.add_stream(
                js_api.StreamConfig(
                    name="HOP_HIGH", sources=[js_api.StreamSource(name="HOP_LOW")], storage=js_api.StorageType.FILE
                )
            )
            sub = await js.pull_subscribe("", durable="hop", stream="HOP_HIGH")
            sent: dict[str, float] = {}
            arrived: dict[str, float] = {}
            loop = asyncio.get_running_loop()

            async def consume() -> None:
                while len(arrived) < count:
                    try:
                        for msg in await sub.fetch(256, timeout=0.5):
                            arrived[msg.headers["id"] if msg.headers else ""] = loop.time()
                            await msg.ack()
                    except nats.errors.TimeoutError:
                        continue

            consumer = asyncio.create_task(consume())
            payload = b"x" * payload_size
            start = loop.time()
            publishes = []
            for i in range(count):
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                key = str(i)
                sent[key] = loop.time()
                publishes.append(asyncio.create_task(js.publish("low.x", payload, headers={"id": key})))
            await asyncio.gather(*publishes)
            await asyncio.wait_for(consumer, timeout=60)
        finally:
            await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    return [arrived[k] - sent[k] for k in sent]
