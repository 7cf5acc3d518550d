"""A county in one process, on loopback: used by the tests and the benchmarks.

Everything is real — nats-server, gRPC servers, databases — only the ports are random.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devtools.natsserver import NatsServer
from fengqiao import natsconfig as render
from fengqiao.clock import Clock
from fengqiao.security import pki
from fengqiao.settings import NodeSettings
from fengqiao.topology import Limits, NatsSpec, NodeSpec, Topology, dump_topology
from fengqiao.v1 import case_pb2, intake_pb2
from harness.proxy import LinkProxy
from host.node import Node

ADMIN_PASSWORD = "fq-test-admin-pw"
TOKEN_SECRET = "fq-test-token-secret-0123456789abcdef"
PERSONAL_DATA_KEY = "ZnEtdGVzdC1wZXJzb25hbC1kYXRhLWtleS0wMTIzNDU="  # 32 bytes, tests only


def small_county(
    county: str = "371702", towns: int = 2, villages: int = 2, neighbours: Mapping[str, Sequence[str]] | None = None
) -> Topology:
    """A county with ``towns`` towns of ``villages`` villages each (sample codes); ``neighbours``
    gives a town's neighbouring towns (三联), as given — list both directions for mutual ones."""
    nodes = [NodeSpec(code=county, name="测试县综治中心")]
    for t in range(1, towns + 1):
        town = f"{county}{100 + t:03d}"
        near = tuple((neighbours or {}).get(town, ()))
        nodes.append(NodeSpec(code=town, name=f"测试{t}镇综治中心", neighbours=near))
        for v in range(1, villages + 1):
            nodes.append(NodeSpec(code=f"{town}{v:03d}", name=f"测试{t}镇{v}村综治站"))
    return Topology(name="测试县（样例）", nodes=tuple(nodes), sample_codes=True)


@dataclasses.dataclass
class LocalCounty:
    """Nodes of one topology running in this process against one nats-server."""

    topology: Topology
    workdir: Path
    nats_url: str
    database_url: Callable[[str], str]
    clock: Clock | None = None
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.topology_file = self.workdir / "topology.yaml"
        dump_topology(self.topology, self.topology_file)

    def settings(self, code: str, **overrides: object) -> NodeSettings:
        values: dict[str, object] = {
            "node_code": code,
            "topology_file": self.topology_file,
            "database_url": self.database_url(code),
            "nats_url": self.nats_url,
            "data_dir": self.workdir / "data",
            "grpc_port": 0,
            "http_port": 0,
            "token_secret": TOKEN_SECRET,
            "personal_data_key": PERSONAL_DATA_KEY,
            "admin_password": ADMIN_PASSWORD,
        }
        values.update(overrides)
        return NodeSettings(**values)  # type: ignore[arg-type]

    async def start(self, *codes: str, **overrides: object) -> None:
        """Start the named nodes (all when none are named), villages first.

        Children first, so a parent's stream finds its sources at once (JetStream retries a
        missing source only after a back-off of several seconds).
        """
        wanted = codes or tuple(n.code for n in self.topology.nodes)
        for spec in sorted((self.topology.node(c) for c in wanted), key=lambda n: -n.tier):
            node = Node(self.settings(spec.code, **overrides), clock=self.clock)
            await node.start()
            self.nodes[spec.code] = node

    async def stop(self, *codes: str) -> None:
        for code in codes or tuple(self.nodes):
            node = self.nodes.pop(code, None)
            if node is not None:
                await node.stop()

    def __getitem__(self, code: str) -> Node:
        return self.nodes[code]


STABLE_PORTS = range(10000, 32000)
"""Below Linux's ephemeral range (32768–60999): a port from here is never taken meanwhile by an
outgoing connection, so a server killed and restarted on it binds it again."""


def free_ports(count: int, *, stable: bool = False) -> list[int]:
    """Loopback ports free right now (held open together, so all distinct); ``stable`` ones
    from ``STABLE_PORTS``, for servers that will be restarted on the same port."""
    socks: list[socket.socket] = []
    candidates = iter(random.sample(STABLE_PORTS, len(STABLE_PORTS))) if stable else None
    try:
        while len(socks) < count:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", next(candidates) if candidates else 0))
            except OSError:
                sock.close()
                continue
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def with_free_nats_ports(topology: Topology, codes: list[str] | None = None, *, stable: bool = False) -> Topology:
    """The topology in leaf mode, with free loopback ports for the nats-servers of ``codes`` (all)."""
    wanted = [n for n in topology.nodes if codes is None or n.code in codes]
    singles = iter(free_ports(4 * sum(1 for n in wanted if n.nats.servers == 1), stable=stable))  # at once: distinct
    ports: dict[str, NatsSpec] = {}
    for spec in wanted:
        n = spec.nats.servers  # a cluster's ports are consecutive: server i uses port + i
        if n == 1:
            client, leaf, monitor, cluster = (next(singles) for _ in range(4))
        else:  # one block, so the four ranges cannot overlap
            base = consecutive_ports(4 * n)[0]
            client, leaf, monitor, cluster = (base + k * n for k in range(4))
        ports[spec.code] = NatsSpec(client, leaf, monitor, cluster, servers=n)
    nodes = tuple(dataclasses.replace(n, nats=ports[n.code]) if n.code in ports else n for n in topology.nodes)
    return dataclasses.replace(topology, nodes=nodes, leafnodes=True)


def consecutive_ports(count: int) -> list[int]:
    """``count`` consecutive free loopback ports."""
    for _ in range(50):
        base = free_ports(1)[0]
        if base + count > 65535:
            continue
        try:
            socks = []
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no consecutive free ports")


@dataclasses.dataclass
class LeafCounty(LocalCounty):
    """Each node with its own nats-server — a JetStream leaf of its parent's, in its own
    domain — started from the configs ``fengqiao topology render`` writes. Every upward link
    goes through a ``LinkProxy`` the test can cut (``cut(code)`` cuts ``code``'s link to its
    parent). Use ``await LeafCounty.create(...)``; with ``tls``, a county CA in the workdir
    issues every node its certificate and the leaf links are mTLS, each child its own user with
    its subtree's permissions (as deployed with ``--tls-dir``).
    """

    servers: dict[str, list[NatsServer]] = dataclasses.field(default_factory=dict)
    proxies: dict[str, list[LinkProxy]] = dataclasses.field(default_factory=dict)
    tls: bool = False
    stable_ports: bool = False

    @classmethod
    async def create(
        cls,
        topology: Topology,
        workdir: Path,
        database_url: Callable[[str], str],
        *,
        clock: Clock | None = None,
        limits: dict[str, Limits] | None = None,
        tls: bool = False,
        stable_ports: bool = False,
    ) -> LeafCounty:
        """Render and start every node's nats-server (not the nodes: ``start`` them); with
        ``stable_ports``, every server and proxy port is outside the ephemeral range."""
        county = cls(topology, workdir, "", database_url, clock=clock, tls=tls)
        if tls:
            pki.init_ca(county.tls_dir, county=topology.county.code, name="测试县", now=dt.datetime.now(dt.UTC))
            for spec in topology.nodes:
                county.issue(spec.code)
        county.topology = with_free_nats_ports(topology, stable=stable_ports)
        county.apply_limits(limits or {})
        county.stable_ports = stable_ports
        await county._link_all()
        county.render()
        for spec in sorted(county.topology.nodes, key=lambda n: n.tier):
            await county.start_server(spec.code)
        return county

    def apply_limits(self, limits: dict[str, Limits]) -> None:
        nodes = tuple(dataclasses.replace(n, limits=limits.get(n.code, n.limits)) for n in self.topology.nodes)
        self.topology = dataclasses.replace(self.topology, nodes=nodes)

    async def _link_all(self) -> None:
        """A proxy for every upward link not yet proxied; the node's leaf remotes dial it."""
        nodes = []
        for spec in self.topology.nodes:
            if spec.parent is not None and spec.code not in self.proxies:
                parent = self.topology.node(spec.parent).nats
                ports = free_ports(parent.servers, stable=True) if self.stable_ports else [0] * parent.servers
                self.proxies[spec.code] = [
                    await LinkProxy(parent.leaf_port + i, port=port).start() for i, port in enumerate(ports)
                ]
            if spec.parent is not None:
                urls = tuple(f"nats-leaf://127.0.0.1:{p.port}" for p in self.proxies[spec.code])
                spec = dataclasses.replace(spec, nats=dataclasses.replace(spec.nats, upstream=urls))
            nodes.append(spec)
        self.topology = dataclasses.replace(self.topology, nodes=tuple(nodes))

    @property
    def rendered(self) -> Path:
        return self.workdir / "rendered"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "pki"

    def issue(self, code: str) -> None:
        """Issue node ``code`` its certificate from the county CA (with ``tls``)."""
        pki.issue(self.tls_dir, code=code, hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))

    def render(self) -> None:
        render.render(
            self.topology,
            self.rendered,
            state_dir=self.workdir / "state",
            config_dir=self.rendered,
            tls_dir=self.tls_dir if self.tls else None,
        )
        self.topology_file = self.rendered / "topology.yaml"

    async def start_server(self, code: str) -> None:
        spec = self.topology.node(code)
        store = self.workdir / "state" / code
        self.servers[code] = [
            await asyncio.to_thread(NatsServer(store_dir=store, config=self.rendered / code / name).start)
            for name in render.server_files(spec)
        ]

    def stop_server(self, code: str, *, kill: bool = False) -> None:
        """Stop a node's nats-server(s) — with SIGKILL, as a crash, when ``kill``."""
        for server in self.servers.pop(code, []):
            server.kill() if kill else server.stop()

    async def add_node(self, spec: NodeSpec) -> None:
        """Add ``spec`` to the topology: re-render, restart only its parent's server, start its own."""
        assert spec.parent is not None
        if self.tls:
            self.issue(spec.code)
        self.topology = dataclasses.replace(self.topology, nodes=(*self.topology.nodes, spec))
        self.topology = with_free_nats_ports(self.topology, [spec.code])
        await self._link_all()
        self.render()
        parent = self.nodes.get(spec.parent)
        if parent is not None:
            await self.stop(spec.parent)
        self.stop_server(spec.parent)
        await self.start_server(spec.parent)
        await self.start_server(spec.code)
        await self.start(spec.code)
        if parent is not None:
            await self.start(spec.parent)

    async def cut(self, code: str) -> None:
        for proxy in self.proxies[code]:
            await proxy.cut()

    def restore(self, code: str) -> None:
        for proxy in self.proxies[code]:
            proxy.restore()

    def client_url(self, code: str) -> str:
        """What the node's services connect to: its own nats-server(s)."""
        return render.client_urls(self.topology.node(code))

    def settings(self, code: str, **overrides: object) -> NodeSettings:
        return super().settings(code, **{"nats_url": self.client_url(code), **overrides})

    async def close(self) -> None:
        """Stop every node, nats-server and proxy."""
        await self.stop()
        for code in list(self.servers):
            self.stop_server(code)
        for proxies in self.proxies.values():
            for proxy in proxies:
                await proxy.close()


def submit_request(division_code: str, **fields: object) -> intake_pb2.SubmitCaseRequest:
    """A valid 邻里 dispute taken in at ``division_code``; ``fields`` override."""
    values: dict[str, object] = {
        "client_request_id": f"test-{uuid.uuid4().hex}",
        "division_code": division_code,
        "grid": "第2网格",
        "channel": "网格员上报",
        "category": "邻里",
        "response_class": case_pb2.RESPONSE_CLASS_ROUTINE,
        "parties": [
            case_pb2.Party(name="张三", id_number="37170219850312004X", phone="13812345678", role="申请人"),
            case_pb2.Party(name="李四", role="被申请人"),
        ],
        "location": case_pb2.Location(address="三组12号", latitude=35.23, longitude=115.44),
        "description": "邻居房檐滴水落入申请人院内，双方多次争吵，请求村里调解。",
        "reporter": "网格员王芳",
    }
    values.update(fields)
    return intake_pb2.SubmitCaseRequest(**values)  # type: ignore[arg-type]
