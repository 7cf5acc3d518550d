"""The benchmarks: SubmitCase throughput at a village, and the outbox relay's publish rate.

The county runs in another process (``bench.county_server``); this process is the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import nats
from nats.js import JetStreamContext

from bench import baselines, load
from bench.county_server import VILLAGE
from bench.harness import BenchSettings, Result, benchmark
from bench.procs import server_process
from fengqiao.divisions import events_stream, own_case_subjects
from fengqiao.grpcutil import channel
from fengqiao.v1 import common_pb2, federation_pb2, federation_pb2_grpc, intake_pb2, intake_pb2_grpc
from harness.county import submit_request

log = logging.getLogger(__name__)

PAGE = 500  # IntakeSettings.page_size_max


@contextlib.asynccontextmanager
async def county(settings: BenchSettings, name: str, *extra: str) -> AsyncIterator[dict[str, Any]]:
    """A fresh county server process (cProfiled when ``profile_dir`` is set)."""
    args: list[str] = list(extra)
    if settings.profile_dir is not None:
        settings.profile_dir.mkdir(parents=True, exist_ok=True)
        args += ["--profile", str(settings.profile_dir / f"{name}.prof")]
    async with server_process("bench.county_server", *args) as info:
        yield info


def submitter(ch: grpc.aio.Channel) -> load.Call:
    """A call submitting a fresh, unique case at the village; a duplicate reply is an error."""
    stub = intake_pb2_grpc.IntakeStub(ch)

    async def call() -> None:
        reply = await stub.SubmitCase(submit_request(VILLAGE))
        if reply.duplicate:
            raise RuntimeError(f"fresh request answered as a duplicate: {reply.case.id}")

    return call


async def stored_cases(ch: grpc.aio.Channel) -> tuple[int, int]:
    """The village's cases counted by ``ListCases`` pages, and its all-time ``received`` figure."""
    stub = intake_pb2_grpc.IntakeStub(ch)
    listed, token = 0, ""
    while True:
        page = await stub.ListCases(
            intake_pb2.ListCasesRequest(
                origin_node=VILLAGE, page=common_pb2.PageRequest(page_size=PAGE, page_token=token)
            )
        )
        listed += len(page.cases)
        token = page.page.next_page_token
        if not token:
            break
    stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
        federation_pb2.GetNodeStatsRequest(code=VILLAGE, period="")
    )
    return listed, stats.received


@benchmark("intake_submit")
async def intake_submit(settings: BenchSettings) -> Result:
    """SubmitCase calls/s at one village (SQLite WAL, outbox) vs a raw gRPC echo of the same size."""
    c, seconds, warmup = settings.concurrency, settings.seconds, settings.warmup_seconds
    echo = await baselines.grpc_echo(
        make_payload=lambda: submit_request(VILLAGE).SerializeToString(),
        concurrency=c,
        seconds=seconds,
        warmup_s=warmup,
    )
    async with county(settings, "intake_submit") as info, channel(info["grpc"]) as ch:
        await stored_cases(ch)  # connects, and checks the village starts empty
        submitted = await load.for_duration(submitter(ch), concurrency=c, seconds=seconds, warmup_s=warmup)
        listed, received = await stored_cases(ch)
    log.info(
        "intake_submit: %.1f cases/s; %d accepted, %d errors; village lists %d cases, received=%d",
        submitted.rate, submitted.completed, submitted.errors, listed, received,
    )  # fmt: skip
    if submitted.errors or listed != submitted.completed or received != submitted.completed:
        raise RuntimeError(
            f"the village holds {listed} cases (received={received}) but {submitted.completed} were "
            f"accepted and {submitted.errors} calls failed"
        )
    return Result(
        name="intake_submit",
        value=submitted.rate,
        unit="cases/s",
        baseline_name=baselines.GRPC_ECHO,
        baseline_value=echo.rate,
        goal_ratio=0.5,
    )


async def drained(js: JetStreamContext, stream: str, target: int, timeout_s: float) -> float:
    """Poll ``stream`` until it holds ``target`` messages; returns the loop time it did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        held = (await js.stream_info(stream)).state.messages
        if held == target:
            return loop.time()
        if held > target:
            raise RuntimeError(f"{stream} holds {held} messages, more than the {target} expected")
        if loop.time() > deadline:
            raise RuntimeError(f"{stream} holds {held} of {target} messages after {timeout_s:.0f} s")
        await asyncio.sleep(0.01)


@benchmark("outbox_publish")
async def outbox_publish(settings: BenchSettings) -> Result:
    """Events/s from the first of N submits until the village stream holds all N events, vs raw
    acknowledged JetStream publishes of the same size and concurrency."""
    c, n = settings.concurrency, settings.events
    stream = events_stream(VILLAGE)
    async with county(settings, "outbox_publish") as info, channel(info["grpc"]) as ch:
        await stored_cases(ch)  # connects before the clock starts
        nc = await nats.connect(info["nats_url"], name="fq-bench-observer")
        try:
            js = nc.jetstream()
            before = (await js.stream_info(stream)).state.messages
            loop = asyncio.get_running_loop()
            began = loop.time()
            done = asyncio.create_task(drained(js, stream, before + n, settings.drain_timeout_s))
            try:
                submitted = await load.for_count(submitter(ch), concurrency=c, count=n)
                if submitted.errors:
                    raise RuntimeError(f"{submitted.errors} of {n} submits failed")
                finished = await done
            finally:
                done.cancel()
            last = await js.get_last_msg(stream, own_case_subjects(VILLAGE))
            event_size = len(last.data or b"")
        finally:
            await nc.close()
    rate = n / (finished - began)
    log.info(
        "outbox_publish: submits took %.2f s (%.1f/s); stream held all %d events after %.2f s (%.1f/s); "
        "event payload %d bytes", submitted.seconds, submitted.rate, n, finished - began, rate, event_size,
    )  # fmt: skip
    raw = await baselines.jetstream_publish(payload_size=event_size, concurrency=c, count=n)
    return Result(
        name="outbox_publish",
        value=rate,
        unit="events/s",
        baseline_name=baselines.JETSTREAM_PUBLISH,
        baseline_value=raw.rate,
        goal_ratio=0.3,
    )
