"""The soak's county as real processes: one nats-server per center (a JetStream leaf of its
parent's, each upward link through a proxy that can be cut) and one ``fengqiao node`` OS
process per center, each killable with SIGKILL and restartable on the same ports and store."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.processes import kill_process, stop_process
from fengqiao.grpcutil import channel
from fengqiao.topology import Topology
from harness.county import PERSONAL_DATA_KEY, TOKEN_SECRET, LeafCounty, free_ports, small_county

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 90.0


def soak_topology(towns: int, villages: int) -> Topology:
    """``towns`` towns of ``villages`` villages; each town neighbours the next in a ring (三联)."""
    codes = [f"371702{100 + t:03d}" for t in range(1, towns + 1)]
    ring = {c: tuple({codes[i - 1], codes[(i + 1) % len(codes)]} - {c}) for i, c in enumerate(codes)}
    return small_county(towns=towns, villages=villages, neighbours=ring if towns > 1 else None)


@dataclasses.dataclass(frozen=True)
class SimTime:
    """The compressed calendar every node shares: ``start`` at Unix time ``wall_start``,
    running ``speed`` times faster than the wall clock."""

    start: dt.datetime
    wall_start: float
    speed: float

    def env(self) -> dict[str, str]:
        return {
            "FQ_CLOCK_START": self.start.isoformat(),
            "FQ_CLOCK_WALL_START": repr(self.wall_start),
            "FQ_CLOCK_SPEED": repr(self.speed),
        }

    def now(self, wall: float) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(wall - self.wall_start) * self.speed)


class NodeProcess:
    """``fengqiao node`` for one center, as an OS process of its own."""

    def __init__(self, code: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.code = code
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown, mid-write, as a power cut would."""
        kill_process(self.process)

    def stop(self, timeout_s: float = 20.0) -> None:
        stop_process(self.process, timeout_s)


class SoakCounty:
    """Every server, proxy and node process of the soak; ``close()`` stops all it started."""

    def __init__(self, leaf: LeafCounty, workdir: Path, sim: SimTime) -> None:
        self.leaf = leaf
        self.topology = leaf.topology
        self.workdir = workdir
        self.sim = sim
        self.nodes: dict[str, NodeProcess] = {}
        (workdir / "logs").mkdir(parents=True, exist_ok=True)

    @classmethod
    async def create(cls, topology: Topology, workdir: Path, sim: SimTime) -> SoakCounty:
        """Render the configs and start every nats-server (parents first) — not the nodes."""
        leaf = await LeafCounty.create(topology, workdir, lambda code: "", stable_ports=True)
        # chosen once the servers and proxies hold theirs; stable: a restarted node binds its port again
        ports = iter(free_ports(len(leaf.topology.nodes), stable=True))
        leaf.topology = leaf.topology.with_ports({n.code: (next(ports), 0) for n in leaf.topology.nodes})
        county = cls(leaf, workdir, sim)
        for spec in county.topology.nodes:
            county.nodes[spec.code] = county._process(spec.code)
        return county

    def _process(self, code: str) -> NodeProcess:
        env = {
            **os.environ,
            **self.sim.env(),
            "FQ_TOKEN_SECRET": TOKEN_SECRET,
            "FQ_PERSONAL_DATA_KEY": PERSONAL_DATA_KEY,
            "FQ_NATS_URL": self.leaf.client_url(code),
            "FQ_DATA_DIR": str(self.workdir / "data"),
            "FQ_GRPC_PORT": str(self.topology.node(code).grpc_port),
            "FQ_SERVE_HTTP": "false",
            "FQ_INTAKE_CLOCK_SCAN_INTERVAL_S": "1",
        }
        env.pop("DATABASE_URL", None)  # every node its own SQLite file: the embedded default
        env.pop("FQ_DATABASE_URL", None)
        args = [
            sys.executable,
            "-m",
            "host.cli",
            "node",
            "--code",
            code,
            "--topology",
            str(self.leaf.topology_file),
        ]
        return NodeProcess(code, args, env, self.workdir / "logs" / f"{code}.log")

    def address(self, code: str) -> str:
        return self.topology.node(code).grpc_address

    def addresses(self) -> dict[str, str]:
        return {n.code: n.grpc_address for n in self.topology.nodes}

    def database_url(self, code: str) -> str:
        return f"sqlite:///{(self.workdir / 'data' / f'{code}.db').resolve()}"

    async def start_nodes(self) -> None:
        """Start every node process, villages first, and wait until each serves."""
        for spec in sorted(self.topology.nodes, key=lambda n: -n.tier):
            self.nodes[spec.code].start()
        await asyncio.gather(*(self.wait_serving(code) for code in self.nodes))

    async def wait_serving(self, code: str, within_s: float = READY_TIMEOUT_S) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        async with channel(self.address(code), timeout_s=1.0, max_reconnect_backoff_s=0.5) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                node = self.nodes[code]
                if not node.running:
                    tail = node.log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
                    raise RuntimeError(f"node {code} exited while starting:\n{tail}")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest())
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if loop.time() > deadline:
                    raise RuntimeError(f"node {code} not serving within {within_s:.0f} s")
                await asyncio.sleep(0.2)

    def kill_node(self, code: str) -> None:
        self.nodes[code].kill()

    def start_node(self, code: str) -> None:
        self.nodes[code].start()

    def kill_server(self, code: str) -> None:
        self.leaf.stop_server(code, kill=True)

    async def start_server(self, code: str) -> None:
        await self.leaf.start_server(code)

    async def cut(self, code: str) -> None:
        await self.leaf.cut(code)

    def restore(self, code: str) -> None:
        self.leaf.restore(code)

    async def heal(self) -> None:
        """Every link restored, every server and node process running again."""
        for spec in self.topology.nodes:
            if spec.parent is not None:
                self.restore(spec.code)
        for spec in sorted(self.topology.nodes, key=lambda n: n.tier):
            if spec.code not in self.leaf.servers:
                await self.start_server(spec.code)
        for node in self.nodes.values():
            if not node.running:
                node.start()
        await asyncio.gather(*(self.wait_serving(code) for code in self.nodes))

    def stop_nodes(self) -> None:
        for node in self.nodes.values():
            if node.running:
                assert node.process is not None
                node.process.terminate()
        for node in self.nodes.values():
            node.stop()

    async def close(self) -> None:
        self.stop_nodes()
        await self.leaf.close()
