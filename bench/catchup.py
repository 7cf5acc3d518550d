"""``catchup``: after an outage with 20,000 events buffered at a village, events/s until its town
has caught up — against raw JetStream publish and consume of the same events, in the same run.

Real parts, as deployed: the village's and the town's nats-servers start from the configs
``fengqiao topology render`` writes (each its own JetStream domain, the village a leaf node of
the town through a proxy this benchmark cuts), with the streams a node creates (``ensure_streams``).
The village's events are published while the link is cut; the clock runs from restoring the
link until the town's events stream holds every one and a consumer there has read them all.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js import api as js_api

from bench.harness import BenchSettings, Result, benchmark
from devtools.natsserver import NatsServer
from fengqiao.divisions import case_subject, events_stream
from fengqiao.streams import ensure_streams, watch_sources
from harness.county import LeafCounty, small_county, submit_request

log = logging.getLogger(__name__)

EVENTS = 20_000
VILLAGE, TOWN = "371702101001", "371702101"
RAW = "raw JetStream publish+consume (sync always)"


async def publish_all(js: JetStreamContext, subject: str, payload: bytes, count: int, window: int = 512) -> None:
    """Acknowledged publishes, ``window`` in flight at a time."""
    for start in range(0, count, window):
        n = min(window, count - start)
        ids = (f"e{start + i}" for i in range(n))
        await asyncio.gather(*(js.publish(subject, payload, headers={"Nats-Msg-Id": i}) for i in ids))


async def consume_all(js: JetStreamContext, stream: str, count: int, *, deadline_s: float) -> None:
    """Read ``count`` messages of ``stream`` with a durable pull consumer, acking each batch."""
    sub = await js.pull_subscribe("", durable="catchup", stream=stream)
    got, deadline = 0, time.monotonic() + deadline_s
    while got < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stream}: {got} of {count} messages after {deadline_s:.0f} s")
        try:
            msgs = await sub.fetch(1000, timeout=1.0)
        except TimeoutError:
            continue
        got += len(msgs)
        await asyncio.gather(*(m.ack() for m in msgs))


async def log_progress(js: JetStreamContext, count: int, began: float) -> None:
    """Log when the first sourced event lands at the town and when the last does."""
    first = False
    while True:
        held = (await js.stream_info(events_stream(TOWN))).state.messages
        if held and not first:
            first = True
            log.info("catchup: first event at the town %.2f s after the link returned", time.monotonic() - began)
        if held >= count:
            log.info("catchup: all %d events sourced %.2f s after the link returned", count, time.monotonic() - began)
            return
        await asyncio.sleep(0.05)


async def raw_rate(payload: bytes, count: int, deadline_s: float) -> float:
    """Events/s of publishing then consuming ``count`` events on one fresh nats-server, as
    durable as the edge's (``sync_interval: always``)."""
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-raw-"))
    config = workdir / "nats.conf"
    store = workdir / "js"
    config.write_text(f'listen: "127.0.0.1:-1"\njetstream {{ store_dir: "{store}", sync_interval: "always" }}\n')
    server = await asyncio.to_thread(NatsServer(store_dir=store, config=config).start)
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(js_api.StreamConfig(name="RAW", subjects=["raw.>"], storage=js_api.StorageType.FILE))
        began = time.monotonic()
        await publish_all(js, "raw.events", payload, count)
        await consume_all(js, "RAW", count, deadline_s=deadline_s)
        elapsed = time.monotonic() - began
        await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    return count / elapsed


async def catchup_rate(payload: bytes, count: int, deadline_s: float) -> tuple[float, float]:
    """(events/s from restoring the link until the town has read every buffered event, seconds)."""
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-catchup-"))
    local = await LeafCounty.create(small_county(towns=1, villages=1), workdir, lambda code: "")
    try:
        clients = {code: await nats.connect(local.client_url(code)) for code in (VILLAGE, TOWN)}
        for code, nc in clients.items():
            await ensure_streams(nc.jetstream(), local.topology, code)
        village, town = clients[VILLAGE].jetstream(), clients[TOWN].jetstream()
        # As a node does: revive the source as soon as the village answers again.
        watch = asyncio.create_task(watch_sources(town, local.topology, TOWN, clients[TOWN]))
        await local.cut(VILLAGE)
        await publish_all(village, case_subject(VILLAGE, "received"), payload, count)
        began = time.monotonic()
        local.restore(VILLAGE)
        progress = asyncio.create_task(log_progress(town, count, began))
        await consume_all(town, events_stream(TOWN), count, deadline_s=deadline_s)
        progress.cancel()
        elapsed = time.monotonic() - began
        held = (await town.stream_info(events_stream(TOWN))).state.messages
        if held != count:
            raise RuntimeError(f"the town holds {held} events, expected {count}")
        watch.cancel()
        for nc in clients.values():
            await nc.close()
    finally:
        await local.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return count / elapsed, elapsed


@benchmark("catchup")
async def catchup(settings: BenchSettings) -> Result:
    """Events/s of a town catching up 20,000 events buffered at a village during an outage."""
    payload = submit_request(VILLAGE).SerializeToString()
    baseline = await raw_rate(payload, EVENTS, settings.drain_timeout_s)
    ours, seconds = await catchup_rate(payload, EVENTS, settings.drain_timeout_s)
    log.info("catchup: %d events in %.2f s after the link returned (%.0f/s)", EVENTS, seconds, ours)
    log.info("%s: %.0f/s", RAW, baseline)
    return Result(
        name="catchup",
        value=ours,
        unit="events/s",
        baseline_name=RAW,
        baseline_value=baseline,
        goal_ratio=0.5,
    )
