"""A county in one process, on loopback: used by the tests and the benchmarks.

Everything is real — nats-server, gRPC servers, databases — only the ports are random.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

from fengqiao.clock import Clock
from fengqiao.node import Node
from fengqiao.settings import NodeSettings
from fengqiao.topology import NodeSpec, Topology, dump_topology
from fengqiao.v1 import case_pb2, intake_pb2

ADMIN_PASSWORD = "fq-test-admin-pw"
TOKEN_SECRET = "fq-test-token-secret-0123456789abcdef"


def small_county(county: str = "371702", towns: int = 2, villages: int = 2) -> Topology:
    """A county with ``towns`` towns of ``villages`` villages each (sample codes)."""
    nodes = [NodeSpec(code=county, name="测试县综治中心")]
    for t in range(1, towns + 1):
        town = f"{county}{100 + t:03d}"
        nodes.append(NodeSpec(code=town, name=f"测试{t}镇综治中心"))
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
