"""``escalation_latency``: village submit → town accepted, at a steady rate (issue: routing).

A village and its town run in two more processes; this process submits a case at the village and
escalates it (operator 上报) at a fixed rate, and listens on the town's subject for the
acceptances. The baseline is the raw path underneath: an acked publish into one stream until a
consumer on a stream sourcing it receives it, at the same rate, in the same run.
"""

from __future__ import annotations

import asyncio
import logging
import statistics

import nats
from nats.aio.msg import Msg

from bench import baselines
from bench.benchmarks import county
from bench.county_server import TOWN, VILLAGE
from bench.harness import BenchSettings, Result, benchmark
from bench.procs import server_process
from fengqiao.divisions import case_subject
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2, intake_pb2_grpc, routing_pb2, routing_pb2_grpc
from harness.county import submit_request

log = logging.getLogger(__name__)
GOAL_P99_MS = 100.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(village_grpc: str, nats_url: str, *, rate: float, count: int) -> list[float]:
    """Seconds from each submit's start until the town's acceptance was published."""
    loop = asyncio.get_running_loop()
    started: dict[str, float] = {}
    accepted: dict[str, float] = {}
    nc = await nats.connect(nats_url, name="fq-bench-escalation")

    async def on_accepted(msg: Msg) -> None:
        accepted.setdefault(case_pb2.CaseEvent.FromString(msg.data).case_id, loop.time())

    await nc.subscribe(case_subject(TOWN, "escalation_accepted"), cb=on_accepted)
    async with channel(village_grpc) as ch:
        intake = intake_pb2_grpc.IntakeStub(ch)
        routing = routing_pb2_grpc.RoutingStub(ch)

        async def one() -> None:
            t0 = loop.time()
            case = (await intake.SubmitCase(submit_request(VILLAGE))).case
            started[case.id] = t0
            await routing.Escalate(routing_pb2.EscalateRequest(case_id=case.id, actor="基准测试", reason="跨村纠纷"))

        begin = loop.time()
        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, begin + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        deadline = loop.time() + 30
        while len(accepted.keys() & started.keys()) < len(started) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # bounded poll: the subscription callback fills ``accepted``
    await nc.close()
    missing = len(started) - len(accepted.keys() & started.keys())
    if missing:
        raise RuntimeError(f"{missing} of {len(started)} escalations were not accepted within 30 s")
    return [accepted[k] - started[k] for k in started]


@benchmark("escalation_latency")
async def escalation_latency(settings: BenchSettings) -> list[Result]:
    """p50 and p99 of village submit → town accepted at ``escalation_rate``/s."""
    rate = settings.escalation_rate
    count = max(1, int(rate * settings.seconds))
    payload = len(submit_request(VILLAGE).SerializeToString())
    raw = await baselines.sourced_hop_latencies(payload_size=payload, rate=rate, count=count)
    async with county(settings, "escalation_latency") as village:
        async with server_process("bench.county_server", "--node", "town", "--nats-url", village["nats_url"]):
            await measure(village["grpc"], village["nats_url"], rate=rate, count=min(count, 50))  # warm-up
            ours = await measure(village["grpc"], village["nats_url"], rate=rate, count=count)
    log.info(
        "escalation_latency at %.0f/s over %d: p50 %.1f ms, p99 %.1f ms, max %.1f ms; raw hop p50 %.1f ms, p99 %.1f ms",
        rate, count, 1e3 * statistics.median(ours), 1e3 * percentile(ours, 0.99), 1e3 * max(ours),
        1e3 * statistics.median(raw), 1e3 * percentile(raw, 0.99),
    )  # fmt: skip
    return [
        Result(
            name=f"escalation_latency_{label}",
            value=1e3 * percentile(ours, share),
            unit="ms",
            baseline_name=f"{baselines.SOURCED_HOP} {label}",
            baseline_value=1e3 * percentile(raw, share),
            goal_ratio=0.0,
            better="lower",
            goal_value=goal,
        )
        for label, share, goal in (("p50", 0.5, GOAL_P99_MS), ("p99", 0.99, GOAL_P99_MS))
    ]
